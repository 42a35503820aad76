#!/usr/bin/env python3
"""The direct QMP driver that scripts/qemu-migrate.sh is measured against (Benchmarks/qemu/README.md).

It does what the script does with nothing in between: mounts a fresh mdevsim mount, creates two
devices, starts a source QEMU and a paused destination (-incoming) with the same arguments as the
script (from `mdevsim qemu-args`), connects to both QMP sockets, sets max-bandwidth and the events
capability, sends `migrate`, blocks on the source's socket until the final MIGRATION event, reads
`query-migrate`, `cont`s the destination, compares digests, quits both and unmounts.

    Benchmarks/qemu/qmp-migrate.py --mdevsim .build/release/mdevsim [--qemu 7.2|10] [--bounce]
        [--scenario F --type T] [--max-bandwidth BYTES_PER_S] [--timeout S] [--delay S] [--qmp-pipe]

Prints one line a figure ("direct: ..."), the wall time from sending `migrate` to the event next
to QEMU's own total-time. Every wait is bounded; exit status 0 only for a completed migration with
equal digests.
"""
import argparse
import json
import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import time
import shutil


class Failure(Exception):
    pass


class QMP:
    """One QMP connection: commands answered in order, events kept for wait_event."""

    def __init__(self, path, deadline, alive, pipe=None):
        # pipe: (read fd, write fd) of QEMU's FIFOs (--qmp-pipe), else a unix socket at path.
        self.rfd, self.wfd = pipe or (None, None)
        while pipe is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if not alive():
                    raise Failure(f"QEMU exited before {path} accepted a connection")
                if time.monotonic() > deadline:
                    raise Failure(f"{path} did not accept a connection in time")
                # The socket appears once QEMU has parsed its arguments; 5 ms keeps the
                # poll cheap and its delay small next to QEMU's start-up.
                time.sleep(0.005)
        if pipe is None:
            self.rfd = self.wfd = self.sock.fileno()
        self.buffer = b""
        self.events = []
        self.message(deadline)  # the greeting
        self.execute("qmp_capabilities")

    def message(self, deadline):
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("QMP: no answer in time")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                raise Failure("QMP: connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line) if line.strip() else self.message(deadline)

    def send(self, command, arguments=None):
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        data = json.dumps(message).encode() + b"\n"
        while data:
            data = data[os.write(self.wfd, data):]

    def execute(self, command, arguments=None, timeout=10):
        self.send(command, arguments)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.message(deadline)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise Failure(f"QMP {command}: {reply['error']}")
            self.events.append(reply)

    def wait_event(self, accept, deadline):
        while True:
            while self.events:
                event = self.events.pop(0)
                if accept(event):
                    return event
            self.events.append(self.message(deadline))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mdevsim", default=".build/release/mdevsim")
    parser.add_argument("--qemu", default="7.2", choices=["7.2", "7", "10", "10.0"])
    parser.add_argument("--bounce", action="store_true")
    parser.add_argument("--scenario")
    parser.add_argument("--type")
    parser.add_argument("--max-bandwidth", type=int, help="bytes per second")
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--qmp-pipe", action="store_true",
                        help="QMP on a pair of FIFOs (-chardev pipe), as scripts/qemu-migrate.sh has it, not a unix socket")
    parser.add_argument("--delay", type=float, default=0, help="seconds to wait before migrate (guest boot)")
    args = parser.parse_args()
    qemu = "10" if args.qemu.startswith("10") else "7.2"
    if qemu == "10":
        binary = os.environ.get("MDEVSIM_QEMU10_ROOT") or "/opt/mdevsim-qemu10"
        binary += "/usr/bin/qemu-system-x86_64"
        scenario, type_ = args.scenario or "scenarios/qemu10.yaml", args.type or "mdevsim-both"
    else:
        binary = "qemu-system-x86_64"
        scenario, type_ = args.scenario or "scenarios/default.yaml", args.type or "mdevsim-default"
    mdevsim = os.path.abspath(args.mdevsim)

    work = tempfile.mkdtemp(prefix="mdevsim-qmp.")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    procs = {}
    mounted = False
    try:
        subprocess.run([mdevsim, "mount", mnt, "--scenario", scenario], check=True, timeout=60)
        mounted = True
        uuids = {}
        for name in ("source", "destination"):
            uuids[name] = open("/proc/sys/kernel/random/uuid").read().strip()
            with open(f"{mnt}/mdev_supported_types/{type_}/create", "w") as f:
                f.write(uuids[name] + "\n")

        def qemu_args(uuid, *flags):
            out = subprocess.run([mdevsim, "qemu-args", uuid, "--mount", mnt, "--qemu", qemu, *flags],
                                 check=True, capture_output=True, text=True, timeout=30).stdout
            return out.split()

        port = 20000 + random.randrange(20000)
        qmp, qmp_args, pipes = {}, {}, {}
        for name in ("source", "destination"):
            if args.qmp_pipe:
                for end in ("in", "out"):
                    os.mkfifo(f"{work}/{name}.qmp.{end}")
                # Read-write: never blocks, as QEMU's own open of the FIFOs.
                pipes[name] = (os.open(f"{work}/{name}.qmp.out", os.O_RDWR), os.open(f"{work}/{name}.qmp.in", os.O_RDWR))
                qmp_args[name] = ["-chardev", f"pipe,id=qmp,path={work}/{name}.qmp", "-mon", "chardev=qmp,mode=control"]
            else:
                qmp_args[name] = ["-qmp", f"unix:{work}/{name}.qmp,server,nowait"]
        for name in ("source", "destination"):
            env = dict(os.environ)
            for assignment in qemu_args(uuids[name], "--env-only", *(["--bounce"] if args.bounce else [])):
                key, _, value = assignment.partition("=")
                env[key] = value
            command = [binary, "-machine", "q35", "-accel", "tcg", "-m", "128", "-nographic", "-nodefaults",
                       "-display", "none", "-serial", "none", "-monitor", "none",
                       *qmp_args[name],
                       *qemu_args(uuids[name], "--device-only")]
            if name == "destination":
                command += ["-S", "-incoming", f"tcp:127.0.0.1:{port}"]
            log = open(f"{work}/{name}.log", "w")
            procs[name] = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        for name in ("source", "destination"):
            qmp[name] = QMP(f"{work}/{name}.qmp", deadline, lambda n=name: procs[n].poll() is None, pipes.get(name))

        source = qmp["source"]
        if args.max_bandwidth is not None:
            source.execute("migrate-set-parameters", {"max-bandwidth": args.max_bandwidth})
        source.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
        time.sleep(args.delay)
        started = time.monotonic()
        source.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        final = source.wait_event(
            lambda e: e.get("event") == "MIGRATION"
            and e.get("data", {}).get("status") in ("completed", "failed", "cancelled"),
            time.monotonic() + args.timeout)["data"]["status"]
        finished = time.monotonic()
        # QEMU sets the status (and sends the event) before it computes total-time and downtime:
        # a query in between reads 0 for both. Asked again until they are there, bounded.
        info = source.execute("query-migrate")
        settle = time.monotonic() + 2
        while final == "completed" and not info.get("total-time") and time.monotonic() < settle:
            time.sleep(0.005)
            info = source.execute("query-migrate")
        wall = round((finished - started) * 1000)
        print(f"direct: status {info.get('status')}")
        print(f"direct: total time: {info.get('total-time')} ms")
        print(f"direct: downtime: {info.get('downtime')} ms")
        print(f"direct: {wall} ms from migrate to QMP's MIGRATION event ({final})")
        ok = info.get("status") == "completed"
        if ok:
            dest = qmp["destination"]
            dest.execute("cont")
            deadline = time.monotonic() + 10
            while dest.execute("query-status").get("status") != "running":
                if time.monotonic() > deadline:
                    raise Failure("the destination did not run within 10 s of cont")
                time.sleep(0.01)
        digests = [open(f"{mnt}/devices/{uuids[n]}/digest").read().strip() for n in ("source", "destination")]
        print(f"direct: digests {'equal' if digests[0] == digests[1] else 'DIFFER'}")
        for name in ("source", "destination"):
            try:
                qmp[name].send("quit")
            except OSError:
                pass
        return 0 if ok and digests[0] == digests[1] else 1
    except (Failure, subprocess.SubprocessError, OSError, ValueError) as error:
        print(f"qmp-migrate: {error}", file=sys.stderr)
        for name in procs:
            path = f"{work}/{name}.log"
            if os.path.exists(path) and os.path.getsize(path):
                print(f"--- {name} QEMU log (last lines):", file=sys.stderr)
                print("".join(open(path).readlines()[-15:]), file=sys.stderr, end="")
        for proc in procs.values():
            proc.terminate()
        return 1
    finally:
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if mounted:
            subprocess.run([mdevsim, "unmount", mnt], capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
