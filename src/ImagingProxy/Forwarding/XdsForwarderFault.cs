using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Words a failure of YARP's forwarder (<see cref="IForwarderErrorFeature"/>) for the SOAP fault an XDS.b client gets
/// instead of YARP's empty 502/504. Only the destination's failures are worded: a client that went away or broke its
/// own upload keeps YARP's answer. The reason names the cause from YARP's error and the exception's error codes, never
/// the exception's text (host names, addresses and runtime messages stay in the log).
/// </summary>
internal static class XdsForwarderFault
{
    /// <summary>
    /// The cause in a few words (for the log) and the fault's reason, or false when the failure is not the
    /// destination's. <paramref name="server"/> is "registry" or "repository", <paramref name="transaction"/> "ITI-43".
    /// </summary>
    public static bool TryDescribe(IForwarderErrorFeature failure, int statusCode, string server, string transaction, out string cause, out string reason)
    {
        var timedOut = statusCode == StatusCodes.Status504GatewayTimeout;
        switch (failure.Error)
        {
            case ForwarderError.RequestTimedOut:
            case ForwarderError.RequestBodyDestination when timedOut:
                cause = "no answer in time";
                reason = $"The {server} for {transaction} did not answer in time; retry later.";
                return true;

            case ForwarderError.Request:
                return DescribeRequest(failure.Exception, server, transaction, out cause, out reason);

            case ForwarderError.RequestCreation:
                cause = "request not created";
                reason = $"The request for {transaction} could not be forwarded to the {server}.";
                return true;

            case ForwarderError.RequestBodyDestination:
                cause = "connection broken while sending";
                reason = $"The connection to the {server} for {transaction} broke while the request was sent; retry later.";
                return true;

            case ForwarderError.ResponseHeaders:
                cause = "answer not relayable";
                reason = $"The {server} for {transaction} sent an answer that cannot be relayed; retry later.";
                return true;

            // YARP's activity timeout while it waited for the body's first bytes (its headers came): the destination stalled.
            case ForwarderError.ResponseBodyDestination when failure.Exception is OperationCanceledException:
                cause = "answer stalled";
                reason = $"The {server} for {transaction} stopped answering; retry later.";
                return true;

            case ForwarderError.ResponseBodyDestination:
                cause = "connection broken while answering";
                reason = $"The connection to the {server} for {transaction} broke while it was answering; retry later.";
                return true;

            default:
                cause = reason = "";
                return false;
        }
    }

    /// <summary>No answer at all: the connection failed, or the destination closed it or answered gibberish.</summary>
    private static bool DescribeRequest(Exception? exception, string server, string transaction, out string cause, out string reason)
    {
        var error = (exception as HttpRequestException)?.HttpRequestError ?? HttpRequestError.Unknown;
        switch (error)
        {
            case HttpRequestError.ResponseEnded:
                cause = "connection closed";
                reason = $"The {server} for {transaction} closed the connection without answering; retry later.";
                return true;

            case HttpRequestError.InvalidResponse:
            case HttpRequestError.HttpProtocolError:
                cause = "invalid answer";
                reason = $"The {server} for {transaction} sent an invalid answer; retry later.";
                return true;

            default:
                string? detail = error switch
                {
                    HttpRequestError.NameResolutionError => "host name not resolved",
                    HttpRequestError.SecureConnectionError => "TLS handshake failed",
                    HttpRequestError.ConnectionError => exception?.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused }
                        ? "connection refused"
                        : "connection failed",
                    _ => null,
                };
                cause = detail ?? "no answer";
                reason = detail is null
                    ? $"The {server} for {transaction} could not be reached; retry later."
                    : $"The {server} for {transaction} could not be reached ({detail}); retry later.";
                return true;
        }
    }
}
