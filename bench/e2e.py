#!/usr/bin/env python3
"""End-to-end latency pieces for bench/run: a timestamping SMTP sink and a paced registration load.

    e2e.py sink --port P --out FILE
        An SMTP server (aiosmtpd) on 127.0.0.1:P that accepts everything, stores nothing, and
        appends one line per recipient of each message to FILE, written when the message's DATA
        has been received: `<unix time, seconds> <recipient lower-cased> <message bytes>`.
        Prints "sink listening on 127.0.0.1:P" once ready; stops on SIGTERM/SIGINT.

    e2e.py load --port P --rate R --duration S --conns C --cookie NONCE --token TOKEN
               --prefix PREFIX --out FILE
        POSTs registrations to http://127.0.0.1:P/ at R per second (open loop: request i is due
        at start + i/R, whatever happened to earlier ones) over C keep-alive connections, each
        with a unique address <PREFIX>-<i>@example.com, and writes one line per request to FILE:
        `<address> <sent at> <response at> <status>` (unix seconds). Both processes use the same
        wall clock, so `arrival - response` is the end-to-end latency of one registration.
"""

import argparse
import asyncio
import re
import signal
import sys
import time

CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")


def run_sink(port: int, out_path: str) -> None:
    from aiosmtpd.controller import Controller

    out = open(out_path, "a", encoding="utf-8", buffering=1)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            now = time.time()
            size = len(envelope.original_content or envelope.content or b"")
            out.write("".join(f"{now:.6f} {r.lower()} {size}\n" for r in envelope.rcpt_tos))
            return "250 2.0.0 Ok"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"sink listening on 127.0.0.1:{port}", flush=True)
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop:
        time.sleep(0.2)
    controller.stop()
    out.close()


async def run_load(args) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    results = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        while True:
            address = await queue.get()
            if address is None:
                break
            body = (f"csrf_token={args.token}&email={address.replace('@', '%40')}"
                    "&website=").encode()
            head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Cookie: csrf={args.cookie}\r\nContent-Length: {len(body)}\r\n\r\n")
            sent = time.time()
            writer.write(head.encode() + body)
            await writer.drain()
            try:
                response = await reader.readuntil(b"\r\n\r\n")
                match = CONTENT_LENGTH.search(response)
                if match and int(match.group(1)):
                    await reader.readexactly(int(match.group(1)))
                status = int(response.split(b" ", 2)[1])
            except (asyncio.IncompleteReadError, ConnectionError):
                status = 0
            results.append((address, sent, time.time(), status))
            if status == 0:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(args.conns)]
    total = int(args.rate * args.duration)
    start = time.time() + 0.2
    for i in range(total):
        delay = start + i / args.rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(f"{args.prefix}-{i}@example.com")
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    with open(args.out, "w", encoding="utf-8") as out:
        for address, sent, received, status in results:
            out.write(f"{address} {sent:.6f} {received:.6f} {status}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--out", required=True)
    load = sub.add_parser("load")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--rate", type=float, required=True)
    load.add_argument("--duration", type=float, required=True)
    load.add_argument("--conns", type=int, default=8)
    load.add_argument("--cookie", required=True)
    load.add_argument("--token", required=True)
    load.add_argument("--prefix", required=True)
    load.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.role == "sink":
        run_sink(args.port, args.out)
    else:
        asyncio.run(run_load(args))


if __name__ == "__main__":
    sys.exit(main())
