"""The supervisor protocol: the one definition of what crosses the supervisor's socket.

- :mod:`.framing`: one JSON object per line, size limits, reading lines;
- :mod:`.envelope`: hello / welcome / refused, requests, cancels, responses, events;
- :mod:`.ops`: every op's request and reply and every event's payload, typed;
- :mod:`.documents`: the records, facts, runs and log answers those carry;
- :mod:`.codec`: the one encoder and strict decoder behind them all.

One spelling on the wire: snake_case keys (the handshake, read by every protocol version,
fixed it). The front-end's remote manager, the supervisor's service and the person's CLI
all encode and decode through this package; it imports only the standard library (and
the core's stdlib-only ``options``), so the CLI loads no event loop to use it.
"""

from process_mcp.supervisor.protocol.codec import BadField, decode_object, encode_value
from process_mcp.supervisor.protocol.envelope import (
    Cancel,
    ErrorInfo,
    Event,
    Hello,
    Message,
    Refused,
    Request,
    Response,
    Welcome,
    decode,
    to_wire,
    wire_line,
)
from process_mcp.supervisor.protocol.framing import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    MessageTooLarge,
    Oversize,
    ProtocolError,
    RequestError,
    encode,
    read_line,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "BadField",
    "Cancel",
    "ErrorInfo",
    "Event",
    "Hello",
    "Message",
    "MessageTooLarge",
    "Oversize",
    "ProtocolError",
    "Refused",
    "Request",
    "RequestError",
    "Response",
    "Welcome",
    "decode",
    "decode_object",
    "encode",
    "encode_value",
    "read_line",
    "to_wire",
    "wire_line",
]
