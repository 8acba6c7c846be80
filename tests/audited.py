"""Run the supervisor (``audited.py supervisor ARGS``) or, through it, its sentinel under an
audit hook that writes every Linux-only access to the file named by ``AUDIT_VIOLATIONS``:
an ``open``, ``os.listdir`` or ``os.scandir`` of ``/proc`` or ``/sys/fs/cgroup``, and a
``ctypes`` lookup of ``prctl`` or ``inotify_*``, made by anything but psutil (whose own
Linux port reads ``/proc``; on macOS it uses ``sysctl``). With ``AUDIT_STRICT=1`` the
Linux-only attributes (``os.pidfd_open``, ``signal.pidfd_send_signal``,
``time.CLOCK_BOOTTIME``) are deleted first, as on macOS, so any use of them fails.

Standard library only: the sentinel runs as ``python -I -S`` (this file in its place,
then the real program by ``runpy``, so that it loads its siblings as usual)."""

import os
import signal
import sys
import time

FORBIDDEN = ("/proc", "/sys/fs/cgroup")
LINUX_ONLY = ((os, "pidfd_open"), (signal, "pidfd_send_signal"), (time, "CLOCK_BOOTTIME"))
_out = os.open(os.environ["AUDIT_VIOLATIONS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _from_psutil() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if f"{os.sep}psutil{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _where() -> str:
    frame, lines = sys._getframe(2), []
    while frame is not None and len(lines) < 6:
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    return " <- ".join(lines)


def _hook(event: str, args: tuple) -> None:
    if event in ("open", "os.listdir", "os.scandir"):
        path = args[0] if args else None
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str) or not path.startswith(FORBIDDEN):
            return
    elif event == "ctypes.dlsym":
        name = str(args[1]) if len(args) > 1 else ""
        if name != "prctl" and not name.startswith("inotify"):
            return
        path = name
    else:
        return
    if not _from_psutil():
        os.write(_out, f"{os.getpid()} {event} {path} at {_where()}\n".encode())


if os.environ.get("AUDIT_STRICT") == "1":
    for module, name in LINUX_ONLY:
        if hasattr(module, name):
            delattr(module, name)
sys.addaudithook(_hook)

if sys.argv[1:2] == ["supervisor"]:
    import process_mcp.core.trees.sentinel as sentinel

    # The sentinel runs this file too, which then runs the real program.
    os.environ["AUDIT_SENTINEL_PROGRAM"] = str(sentinel.PROGRAM)
    sentinel.PROGRAM = os.path.abspath(__file__)  # type: ignore[assignment]
    from process_mcp.supervisor.__main__ import main

    sys.exit(main(sys.argv[2:]))
else:
    import runpy

    runpy.run_path(os.environ["AUDIT_SENTINEL_PROGRAM"], run_name="__main__")
