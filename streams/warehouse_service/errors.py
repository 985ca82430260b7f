"""ClickHouse's exceptions as its HTTP interface reports them: text, code header and HTTP status."""

from __future__ import annotations

import re

# HTTP status per ClickHouse error code, as ClickHouse's HTTP handler maps them; anything else is a 500.
_STATUS_BY_CODE: dict[int, int] = {
    194: 401,  # REQUIRED_PASSWORD
    516: 403, 192: 403, 193: 403,  # AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD
    164: 403, 497: 403,  # READONLY, ACCESS_DENIED
    6: 400, 26: 400, 27: 400, 36: 400, 38: 400, 41: 400, 42: 400, 43: 400, 53: 400, 62: 400, 69: 400, 72: 400,
    117: 400, 456: 400, 457: 400, 395: 400,
    16: 404, 46: 404, 47: 404, 50: 404, 56: 404, 60: 404, 63: 404, 73: 404, 81: 404, 115: 404,
    159: 408,  # TIMEOUT_EXCEEDED
    48: 501,  # NOT_IMPLEMENTED
    394: 499,  # QUERY_WAS_CANCELLED
}

_CODE = re.compile(r"Code: (\d+)\.")
_WRAPPED = re.compile(r"^Code: \d+\. DB::Exception: (Code: \d+\. DB::Exception: .*\([A-Z0-9_]+\)) \(version [^)]*\)\. "
                      r"\([A-Z0-9_]+\)$", re.DOTALL)
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


class ClickHouseError(Exception):
    """An error the service answers with, in ClickHouse's words: `Code: N. DB::Exception: ... (NAME)`."""

    def __init__(self, code: int, name: str, message: str, text: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.text = text or f"Code: {code}. DB::Exception: {message}. ({name})"

    @property
    def http_status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 500)

    @classmethod
    def from_engine(cls, error: Exception) -> ClickHouseError:
        """The engine's exception keeps its own text; only its code and name are read out of it."""
        text = str(error).strip()
        wrapped = _WRAPPED.match(text)  # chdb sometimes wraps an exception in a copy of itself
        text = wrapped.group(1) if wrapped else text
        code = _CODE.search(text)
        name = _NAME.search(text)
        if not code:
            return cls(1001, "STD_EXCEPTION", text)
        return cls(int(code.group(1)), name.group(1) if name else "UNKNOWN_EXCEPTION", text, text)


def readonly_error(what: str) -> ClickHouseError:
    return ClickHouseError(164, "READONLY", f"Cannot execute query in readonly mode: {what}")


def access_denied(what: str) -> ClickHouseError:
    return ClickHouseError(497, "ACCESS_DENIED", what)


def bad_arguments(what: str) -> ClickHouseError:
    return ClickHouseError(36, "BAD_ARGUMENTS", what)
