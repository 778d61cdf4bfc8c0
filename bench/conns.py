#!/usr/bin/env python3
"""Holds many client connections open on a proxy, for bench/conns.sh.

    conns.py HOST:PORT COUNT MODE HOLD_SECONDS

MODE idle: each connection sends one keep-alive GET, reads the whole answer, then
stays open and silent (an idle keep-alive client). MODE slow: each sends the first
line and one header of a request and nothing more (a slow client, or slowloris).

Prints one line when all COUNT are open (`open N`), then after HOLD_SECONDS how many
the proxy has closed in the meantime (`closed N`), and exits, closing the rest.
"""
import asyncio
import resource
import sys

HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
PARTIAL = b"GET / HTTP/1.1\r\nHost: bench\r\n"


async def one_answer(reader):
    """Reads one response with a content-length (testkit's and the example's)."""
    status = await reader.readline()
    if not status.startswith(b"HTTP/1.1 200 "):
        raise ValueError(f"answered {status!r}")
    length = None
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed before the answer")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("an answer without content-length")
    await reader.readexactly(length)


async def hold(host, port, mode, opened, gone):
    reader, writer = await asyncio.open_connection(host, port)
    if mode == "idle":
        writer.write(HEAD)
        await one_answer(reader)
    else:
        writer.write(PARTIAL)
        await writer.drain()
    opened.append(writer)
    # Anything read now (the end of the stream, a 408, a reset) means the proxy let go.
    try:
        await reader.read(1)
    except OSError:
        pass
    gone.append(writer)


async def main():
    addr, count, mode, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    host, port = addr.rsplit(":", 1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 1024)), hard))
    opened, gone = [], []
    tasks = []
    # Opened in batches so that the accept queues never overflow.
    for start in range(0, count, 500):
        batch = [asyncio.create_task(hold(host, int(port), mode, opened, gone))
                 for _ in range(start, min(count, start + 500))]
        tasks += batch
        while len(opened) < min(count, start + 500):
            failed = [t for t in batch if t.done() and t.exception()]
            if failed:
                raise failed[0].exception()
            await asyncio.sleep(0.01)
    print(f"open {len(opened)}", flush=True)
    await asyncio.sleep(seconds)
    print(f"closed {len(gone)}", flush=True)
    for w in opened:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
