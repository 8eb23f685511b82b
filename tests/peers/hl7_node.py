#!/usr/bin/python3
"""A real HL7 v2 MLLP receiver built on python3-hl7, for ImagingProxy integration tests and benchmarks.

Run with Debian's interpreter (it has python3-hl7):  /usr/bin/python3 tests/peers/hl7_node.py --port 0
Prints "LISTENING <port>" (flushed) once bound. Each received message is acked with hl7's create_ack, so MSA-2
equals the message's MSH-10. Stop it by its process id (SIGTERM/SIGINT).

Options:
  --host 127.0.0.1   address to bind
  --port N           port to bind (0 = pick a free one)
  --log FILE         append "<MSH-10> <MSH-9>" per received message, flushed
  --ack AA|AE|AR     acknowledgment code to answer with (default AA)
  --delay-ms N       wait N ms before acking each message
  --no-ack           read messages and never answer (simulates a hung node)
  --dedupe           answer AE (ERR-3 205, duplicate key) to a message whose MSH-10 it has seen before, as receivers
                     that dedupe on MSH-10 do
  --tls-cert FILE    serve MLLP over TLS with this PEM certificate (and --tls-key)
  --tls-key FILE     the certificate's PEM private key
  --tls-ca FILE      require a client certificate issued by this PEM CA
"""
import argparse
import asyncio
import signal
import ssl
import sys

import hl7
import hl7.mllp


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", default=None)
    p.add_argument("--ack", choices=["AA", "AE", "AR"], default="AA")
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--no-ack", action="store_true")
    p.add_argument("--dedupe", action="store_true")
    p.add_argument("--encoding", default="utf-8", help="decode/encode messages with this codec (default utf-8)")
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    p.add_argument("--tls-ca", default=None)
    return p.parse_args(argv)


async def main(argv):
    args = parse_args(argv)
    log = open(args.log, "a", encoding="utf-8") if args.log else None
    counter = 0
    seen = set()

    async def handle(reader, writer):
        nonlocal counter
        try:
            while not reader.at_eof():
                try:
                    message = await reader.readmessage()
                except asyncio.IncompleteReadError:
                    break
                msh = message.segment("MSH")
                control_id = str(msh[10])
                message_type = str(msh[9])
                if log:
                    log.write(f"{control_id} {message_type}\n")
                    log.flush()
                if args.no_ack:
                    continue
                if args.delay_ms > 0:
                    await asyncio.sleep(args.delay_ms / 1000.0)
                counter += 1
                code = args.ack
                if args.dedupe:
                    code = "AE" if control_id in seen else code
                    seen.add(control_id)
                writer.writemessage(message.create_ack(code, message_id=f"NODE{counter:08d}"))
                await writer.drain()
        except (ConnectionError, hl7.mllp.InvalidBlockError, ValueError) as e:
            print(f"connection closed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            writer.close()

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            tls.load_verify_locations(args.tls_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    server = await hl7.mllp.start_hl7_server(
        handle, args.host, args.port, encoding=args.encoding, limit=64 * 1024 * 1024, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if log:
        log.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
