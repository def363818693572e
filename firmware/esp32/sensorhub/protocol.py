# Serial protocol v1 (docs/serial-protocol.md): framing, encoding and command validation.
# Runs unchanged on MicroPython and CPython: no f-strings with format specs, no typing, no dataclasses.
import json

PROTOCOL_VERSION = 1
MAX_LINE = 1024  # bytes, including the terminating newline
MAX_ID = 64
SEQ_LIMIT = 1 << 30  # the counter wraps here (MicroPython small int)

COMMAND_TYPES = ("ping", "hello", "read", "config", "led", "window", "calibrate", "reset")


class ProtocolError(Exception):
    """A host line the board cannot take; `code` is the error code sent back."""

    def __init__(self, code, message, cmd_id=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.cmd_id = cmd_id


class CommandRefused(Exception):
    """A well-formed command with a value the board will not carry out."""


def encode(msg):
    """One protocol line (bytes, newline-terminated) for a message dict."""
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def decode_command(line):
    """Parse one host line (bytes without the newline) into a command dict.

    Raises ProtocolError with the code the board answers with.
    """
    if len(line) + 1 > MAX_LINE:
        raise ProtocolError("too_long", "command longer than %d bytes discarded" % MAX_LINE)
    try:
        text = line.decode()
        msg = json.loads(text)
    except ValueError:  # UnicodeError is a ValueError too
        # The parser's messages differ between MicroPython and CPython (and MicroPython does not
        # check UTF-8 when decoding): one stable message for both.
        raise ProtocolError("bad_json", "could not parse command: not valid UTF-8 JSON")
    if not isinstance(msg, dict):
        raise ProtocolError("not_object", "a command must be a JSON object")
    cmd_id = msg.get("id")
    if cmd_id is not None:
        if not isinstance(cmd_id, str) or len(cmd_id) > MAX_ID:
            raise ProtocolError("bad_json", "id must be a string of at most %d characters" % MAX_ID)
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("missing_type", 'command has no string "type"', cmd_id)
    if kind not in COMMAND_TYPES:
        raise ProtocolError("unknown_type", 'unknown command type "%s"' % kind[:40], cmd_id)
    return msg


def error_message(exc):
    """The `error` message for a ProtocolError (without seq)."""
    msg = {"type": "error", "error": exc.code, "message": exc.message}
    if exc.cmd_id is not None:
        msg["id"] = exc.cmd_id
    return msg


def ack(cmd_id, ok=True, error=None, result=None):
    msg = {"type": "ack", "id": cmd_id, "ok": ok}
    if error is not None:
        msg["error"] = error
    if result is not None:
        msg["result"] = result
    return msg


# --- value checks shared by the command handlers -------------------------------------------

def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return (isinstance(value, int) or isinstance(value, float)) and not isinstance(value, bool)


def int_in(name, value, low, high):
    """`value` as an int within [low, high], or CommandRefused naming the field."""
    if not is_int(value) or value < low or value > high:
        raise CommandRefused("%s must be an integer %d..%d, got %s" % (name, low, high, show(value)))
    return value


def number_in(name, value, low, high):
    if not is_number(value) or value < low or value > high:
        raise CommandRefused("%s must be a number %s..%s, got %s" % (name, show(low), show(high), show(value)))
    return float(value)


def boolean(name, value):
    if not isinstance(value, bool):
        raise CommandRefused("%s must be true or false, got %s" % (name, show(value)))
    return value


def show(value):
    """A short JSON rendering of a value for error messages."""
    text = json.dumps(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return text


def parse_color(value):
    """'#rrggbb' -> (r, g, b); CommandRefused otherwise."""
    if isinstance(value, str) and len(value) == 7 and value[0] == "#":
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            pass
    raise CommandRefused('color must be "#rrggbb", got %s' % show(value))


def format_color(rgb):
    return "#%02x%02x%02x" % rgb


class LineBuffer:
    """Splits a byte stream into lines; drops (and reports) lines longer than MAX_LINE.

    feed() returns a list of items: bytes for a complete line (without newline, trailing CR
    stripped) or None for an oversized line that was discarded.
    """

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self.buf = b""
        self.discarding = False

    def feed(self, data):
        out = []
        buf = self.buf + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = buf[:nl]
            buf = buf[nl + 1:]
            if self.discarding:
                self.discarding = False
                out.append(None)
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 1 > self.max_line:
                out.append(None)
            else:
                out.append(line)
        if len(buf) >= self.max_line:
            # An unfinished line that is already too long: keep nothing of it.
            self.discarding = True
            buf = b""
        self.buf = buf
        return out
