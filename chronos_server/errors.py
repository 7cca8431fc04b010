"""The ChronosError tree: each class carries its API `code` and HTTP status (spec §15).

    ChronosError                      500 internal_error
    ├── BadRequest                    400 bad_request
    │   └── HandlerRequiredForPull    400 handler_required_for_pull
    ├── Unauthorized                  401 unauthorized
    ├── NotFound                      404 not_found
    │   ├── ScheduleNotFound          404 schedule_not_found
    │   ├── JobNotFound               404 job_not_found
    │   └── ExecutionNotFound         404 execution_not_found
    ├── Conflict                      409 conflict
    │   ├── ScheduleArchived          409 schedule_archived
    │   ├── ScheduleCompleted         409 schedule_completed
    │   ├── ScheduleStatusChanged     409 schedule_status_changed
    │   ├── IdempotencyKeyConflict    409 idempotency_key_conflict
    │   ├── JobNotCancellable         409 job_not_cancellable
    │   ├── LeaseExpired              409 lease_expired
    │   └── ExecutionAlreadyFinished  409 execution_already_finished
    ├── MethodNotAllowed              405 method_not_allowed (extension; `Allow` header)
    ├── ValidationFailed              422 validation_error (carries errors[])
    ├── RateLimited                   429 rate_limit_exceeded
    └── ServiceUnavailable            503 service_unavailable
        ├── StoreUnavailable          (transient: loops back off)
        └── Stopping                  (graceful stop: no new claims; `Retry-After: 1`)

The API renders every one of them in the envelope; anything else escaping a route is a bug (500).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ChronosError(Exception):
    status = 500
    code = "internal_error"
    default_message = "Internal error"

    def __init__(self, message: str | None = None, errors: list[FieldError] | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.errors = errors or []


class BadRequest(ChronosError):
    status, code, default_message = 400, "bad_request", "Bad request"


class HandlerRequiredForPull(BadRequest):
    code, default_message = "handler_required_for_pull", "Pull delivery requires a handler"


class Unauthorized(ChronosError):
    status, code, default_message = 401, "unauthorized", "Missing or invalid API key"


class NotFound(ChronosError):
    status, code, default_message = 404, "not_found", "Not found"


class ScheduleNotFound(NotFound):
    code, default_message = "schedule_not_found", "Schedule not found"


class JobNotFound(NotFound):
    code, default_message = "job_not_found", "Job not found"


class ExecutionNotFound(NotFound):
    code, default_message = "execution_not_found", "Execution not found"


class HandlerLimitsNotFound(NotFound):
    """Extension: the handler has no limits (README "Handler limits")."""

    code, default_message = "handler_limits_not_found", "This handler has no limits"


class Conflict(ChronosError):
    status, code, default_message = 409, "conflict", "Conflict"


class ScheduleArchived(Conflict):
    code, default_message = "schedule_archived", "Schedule is archived"


class ScheduleCompleted(Conflict):
    code, default_message = "schedule_completed", "Schedule is completed"


class ScheduleStatusChanged(Conflict):
    code, default_message = "schedule_status_changed", "Schedule status changed; retry"


class IdempotencyKeyConflict(Conflict):
    code, default_message = "idempotency_key_conflict", "Idempotency key already used"

    def __init__(self, existing_job_id: str) -> None:
        super().__init__(
            None, [FieldError("idempotency_key", f"already used by job {existing_job_id}")]
        )
        self.existing_job_id = existing_job_id


class JobNotCancellable(Conflict):
    code, default_message = "job_not_cancellable", "Job has an attempt in flight or is finished"


class LeaseExpired(Conflict):
    code, default_message = "lease_expired", "Execution lease expired; the job will be retried"


class ExecutionAlreadyFinished(Conflict):
    code, default_message = "execution_already_finished", "Execution already reported"


class ValidationFailed(ChronosError):
    status, code, default_message = 422, "validation_error", "Validation failed"


class RateLimited(ChronosError):
    status, code, default_message = 429, "rate_limit_exceeded", "Rate limit exceeded"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class MethodNotAllowed(ChronosError):
    status, code, default_message = 405, "method_not_allowed", "Method not allowed"

    def __init__(self, allowed: list[str]) -> None:
        super().__init__(f"Method not allowed; use {', '.join(allowed)}")
        self.allowed = allowed


class ServiceUnavailable(ChronosError):
    status, code, default_message = 503, "service_unavailable", "Service unavailable"
    retry_after: int | None = None


class StoreUnavailable(ServiceUnavailable):
    default_message = "Storage is unavailable"


class Stopping(ServiceUnavailable):
    default_message = "The server is stopping; retry shortly"
    retry_after = 1


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(None, [FieldError(field, message)])
