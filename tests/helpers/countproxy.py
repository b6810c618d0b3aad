#!/usr/bin/env python3
# A TCP proxy that counts connections, for tests that must show a client does not hammer a
# server that is down: every accepted connection is counted, and so is every one whose
# upstream could not be reached (then closed at once, as a dead server would).
#
# Usage: countproxy.py UPSTREAM_PORT COUNT_FILE
# Listens on 127.0.0.1 at a port the kernel picks and prints "port=P". After every change it
# rewrites COUNT_FILE as "accepted=N refused=M\n". Exits when its standard input closes, so a
# test that dies cannot leave it behind.
import asyncio
import os
import sys


async def main():
    upstream_port = int(sys.argv[1])
    count_file = sys.argv[2]
    counts = {"accepted": 0, "refused": 0}

    def record():
        tmp = count_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("accepted=%d refused=%d\n" % (counts["accepted"], counts["refused"]))
        os.replace(tmp, count_file)

    async def pump(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError):
                pass

    async def handle(client_reader, client_writer):
        counts["accepted"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            counts["refused"] += 1
            record()
            client_writer.close()
            return
        record()
        await asyncio.gather(pump(client_reader, up_writer), pump(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    record()
    print("port=%d" % server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main())
