"""Sign-in, sessions, API keys, roles and the policy table every route, page and handler is checked against."""
