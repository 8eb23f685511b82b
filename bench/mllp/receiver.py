#!/usr/bin/python3
"""Minimal asyncio MLLP receiver for benchmarks: answers every frame with MSA|AA|<MSH-10>. Usage: receiver.py PORT"""
import asyncio
import sys

SB, EB = b"\x0b", b"\x1c\x0d"


class Receiver(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        buffer = self.buffer + data if self.buffer else data
        out = []
        start = 0
        while True:
            end = buffer.find(EB, start)
            if end < 0:
                break
            sb = buffer.find(SB, start, end)
            if sb >= 0:
                msh = buffer[sb + 1:buffer.find(b"\r", sb + 1, end + 1)]
                fields = msh.split(b"|", 10)
                control = fields[9] if len(fields) > 9 else b""
                out.append(b"\x0bMSH|^~\\&|NODE|HOSP|RIS|RAD|20250101120000||ACK^O01^ACK|A" + control
                           + b"|P|2.5.1\rMSA|AA|" + control + b"\r\x1c\x0d")
            start = end + 2
        self.buffer = buffer[start:]
        if out:
            self.transport.write(b"".join(out))


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
