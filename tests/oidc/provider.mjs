// A real OpenID provider (node-oidc-provider, certified) for Flowloom's SSO tests.
// Configured from the environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS
// (comma separated). Any login name is accepted (dev interactions); it becomes the subject, and
// <name>@example.test the e-mail; its `groups` claim is what the JSON file OIDC_GROUPS_FILE
// (read at every sign-in) lists for the login name. Prints "oidc-provider listening on <issuer>" when ready.
import crypto from 'node:crypto';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: process.env.OIDC_REDIRECT_URIS.split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        let groups = [];
        try {
          groups = JSON.parse(fs.readFileSync(process.env.OIDC_GROUPS_FILE, 'utf8'))[id] || [];
        } catch (err) {
          groups = [];
        }
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `Test ${id}`, groups };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  conformIdTokenClaims: false,
});

provider.on('grant.error', (ctx, err) => console.error('grant.error', err.name, err.error_description));
provider.on('authorization.error', (ctx, err) => console.error('authorization.error', err.name, err.error_description));

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
