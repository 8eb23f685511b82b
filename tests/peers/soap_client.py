#!/usr/bin/python3
"""A real SOAP client (python3-zeep) calling one XDS.b operation, for ImagingProxy's XDS fault tests.

Run with Debian's interpreter (it has python3-zeep):
  /usr/bin/python3 tests/peers/soap_client.py --url http://127.0.0.1:PORT/xds --soap 11|12 --action urn:ihe:iti:2007:...
zeep is given a minimal WSDL (one document/literal operation with that SOAP action, in a SOAP 1.1 or 1.2 binding), so
it sends the request as a stack of that version does: SOAP 1.1 as text/xml with a SOAPAction header, SOAP 1.2 as
application/soap+xml with the action parameter. Prints one JSON line and exits 0:
  {"outcome": "fault", "code": ..., "message": ...}   zeep read the answer as a SOAP fault of its version
  {"outcome": "answer", "status": ...}                 the answer was not a fault
  {"outcome": "error", "type": ..., "message": ...}    zeep failed otherwise (transport, unparseable answer)
"""
import argparse
import json
import os
import sys
import tempfile

import zeep
import zeep.exceptions

WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="{binding_ns}"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:imagingproxy:test" targetNamespace="urn:imagingproxy:test">
  <types>
    <xs:schema targetNamespace="urn:imagingproxy:test" elementFormDefault="qualified">
      <xs:element name="Request" type="xs:string"/>
      <xs:element name="Response" type="xs:string"/>
    </xs:schema>
  </types>
  <message name="In"><part name="body" element="t:Request"/></message>
  <message name="Out"><part name="body" element="t:Response"/></message>
  <portType name="Port"><operation name="Call"><input message="t:In"/><output message="t:Out"/></operation></portType>
  <binding name="Binding" type="t:Port">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Call">
      <soap:operation soapAction="{action}"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="Service"><port name="Port" binding="t:Binding"><soap:address location="{url}"/></port></service>
</definitions>
"""

BINDINGS = {"11": "http://schemas.xmlsoap.org/wsdl/soap/", "12": "http://schemas.xmlsoap.org/wsdl/soap12/"}


class SentActionTransport(zeep.Transport):
    """zeep's transport, with the action in the request's headers (Content-Type or SOAPAction) replaced on the way out."""

    def __init__(self, action, sent, **kwargs):
        super().__init__(**kwargs)
        self._action = action
        self._sent = sent

    def post(self, address, message, headers):
        headers = {name: value.replace(self._action, self._sent) for name, value in headers.items()}
        return super().post(address, message, headers)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--soap", choices=sorted(BINDINGS), required=True)
    p.add_argument("--action", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--sent-action", default=None,
                   help="send this action on the wire instead of --action (Python escapes such as \\x1b decoded): "
                        "a text the WSDL, being XML, cannot hold")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="soap-client-") as directory:
        wsdl = os.path.join(directory, "service.wsdl")
        with open(wsdl, "w", encoding="utf-8") as f:
            f.write(WSDL.format(binding_ns=BINDINGS[args.soap], action=args.action, url=args.url))
        if args.sent_action is None:
            transport = zeep.Transport(timeout=args.timeout, operation_timeout=args.timeout)
        else:
            sent = args.sent_action.encode("ascii").decode("unicode_escape")
            transport = SentActionTransport(args.action, sent, timeout=args.timeout, operation_timeout=args.timeout)
        client = zeep.Client(wsdl, transport=transport)
        try:
            with client.settings(raw_response=False):
                client.service.Call("query")
            result = {"outcome": "answer", "status": 200}
        except zeep.exceptions.Fault as fault:
            result = {"outcome": "fault", "code": fault.code, "message": fault.message}
        except Exception as error:  # the test reports whatever else zeep raised
            result = {"outcome": "error", "type": type(error).__name__, "message": str(error)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
