"""Errors a client can cause or must be told about, each with its HTTP status."""


class ChirpError(Exception):
    status = 400
    retry_after: int | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ChirpError):
    status = 400


class NotLoggedIn(ChirpError):
    status = 401


class Forbidden(ChirpError):
    status = 403


class NotFound(ChirpError):
    status = 404


class Conflict(ChirpError):
    status = 409


class UnsupportedMediaType(ChirpError):
    status = 415


class Unavailable(ChirpError):
    status = 503
    retry_after = 5
