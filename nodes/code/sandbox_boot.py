"""What runs first inside the sandbox (`python -I -S -c <this file's text>`), before the user's code.

It reads one JSON request from stdin ({"code", "inputs", "limits"}), lowers its own resource limits
(memory, CPU time, file size, open files, processes, core dumps: hard limits, so the code cannot
raise them again), installs an audit hook that refuses sockets, new processes, native-code modules
and swapping code objects, runs the code, and writes one JSON line to stdout:
{"ok": true, "result": ..., "logs": "..."} or {"ok": false, "kind": ..., "error": ...}.

The hook gives clear errors; the walls are the sandbox's: no network namespace interfaces, a
read-only view of the system libraries and the standard library only, no /proc, an empty
environment, the `nobody` user. This module imports nothing from Flowloom: it is sent as text.
"""

import io
import json
import resource
import sys


def _limit(which, value):
    if value:
        resource.setrlimit(which, (value, value))


def _hook(event, args):
    # Only literals and str methods here: the user's code could rebind any global or builtin.
    if event in {
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.exec",
        "os.spawn",
        "os.system",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "pty.spawn",
    }:
        raise PermissionError("tool.code: starting processes is not allowed (" + event + ")")
    if event in {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.sendto",
    }:
        raise PermissionError("tool.code: network access is not allowed (" + event + ")")
    if event == "import" and str(args[0]).partition(".")[0] in {
        "ctypes",
        "_ctypes",
        "cffi",
        "_posixsubprocess",
        "_multiprocessing",
        "multiprocessing",
        "subprocess",
        "socket",
        "_socket",
        "ssl",
        "_ssl",
        "mmap",
        "fcntl",
        "resource",
        "signal",
        "_signal",
        "faulthandler",
        "pty",
        "termios",
        "_xxsubinterpreters",
        "_testcapi",
    }:
        raise PermissionError("tool.code: importing " + str(args[0]) + " is not allowed")
    if event in {
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "sys.setprofile",
        "sys.settrace",
        "code.__new__",
        "cpython.PyInterpreterState_New",
    }:
        raise PermissionError("tool.code: " + event + " is not allowed")
    if event == "object.__setattr__" and str(args[1]) in {"__code__", "__globals__", "__closure__"}:
        raise PermissionError("tool.code: changing a function's " + str(args[1]) + " is not allowed")


def _main():
    request = json.loads(sys.stdin.read())
    limits = request["limits"]
    out = sys.stdout
    _limit(resource.RLIMIT_AS, limits["memory_bytes"])
    _limit(resource.RLIMIT_CPU, limits["cpu_s"])
    _limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
    _limit(resource.RLIMIT_NOFILE, 32)
    _limit(resource.RLIMIT_NPROC, 1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    logs = io.StringIO()
    sys.stdout = sys.stderr = logs
    namespace = {"__name__": "__flowloom_code__", "__builtins__": __builtins__}
    sys.addaudithook(_hook)
    try:
        compiled = compile(request["code"], "<tool.code>", "exec")
        exec(compiled, namespace)  # noqa: S102 - the user's code, inside the sandbox: the point of it
        main = namespace.get("main")
        if callable(main):
            result = main(request["inputs"])
        else:
            result = namespace.get("result")
        text = json.dumps({"ok": True, "result": result, "logs": logs.getvalue()[-20000:]})
    except MemoryError:
        text = json.dumps({"ok": False, "kind": "memory", "error": "MemoryError: out of memory"})
    except BaseException as exc:  # noqa: BLE001 - everything the code raised goes back as its error
        kind = "refused" if isinstance(exc, PermissionError) and "tool.code:" in str(exc) else "error"
        text = json.dumps(
            {
                "ok": False,
                "kind": kind,
                "error": type(exc).__name__ + ": " + str(exc)[:2000],
                "logs": logs.getvalue()[-20000:],
            },
            default=str,
        )
    out.write(text)
    out.flush()


_main()
