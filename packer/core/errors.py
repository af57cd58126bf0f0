"""One error hierarchy: every failure a user can cause or meet is a TritonPackError.

Each subclass names the stage that failed and carries a distinct exit code, a
message written for the user, an optional hint, and the underlying detail
(tool output, original exception) that ``--verbose`` shows.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, documented in the README; one per kind of failure."""

    OK = 0
    CHECK_FAILED = 1  # lock --check / check: something is stale
    USAGE = 2  # bad command line (click's own code)
    MODEL = 3  # model directory or config.pbtxt
    SCAN = 4  # user source cannot be scanned
    RESOLVE = 5  # import or requirement cannot be resolved
    LOCK = 6  # lock file unreadable, corrupted, or stale under --frozen
    TARGET = 7  # unknown Triton release, platform, Python
    BUILD = 8  # conda or PyPI install into the environment
    PACK = 9  # archive could not be written or failed its checks
    CONFIG = 10  # config.pbtxt patch refused
    VERIFY_LOAD = 11  # model does not load in tritonserver
    VERIFY_INFER = 12  # model loads but inference fails
    RUNTIME = 13  # verification runtime missing or broken
    BUSY = 14  # another run holds the model's lock (--no-wait), or a local channel's too long
    CACHE = 15  # tritonpack's cache is not a writable directory, or its disk is full
    REMOTE = 16  # a remote cache (OCI registry) refused, or served altered content
    VERIFY_INPUTS = 17  # model loads; its execute() rejects tritonpack's made-up inputs
    MODEL_BUG = 18  # model.py (or a wrong package) raises a bug whatever the inputs: NameError...
    BUG = 70  # an unexpected exception: a bug in tritonpack
    INTERRUPTED = 130


class TritonPackError(Exception):
    """Base of every error tritonpack reports to a user."""

    exit_code: ExitCode = ExitCode.MODEL

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class UsageError(TritonPackError):
    """A command asked of something it does not apply to (verify a model never packed): the
    user's next step is another command, not a fix of the model."""

    exit_code = ExitCode.USAGE


class ModelError(TritonPackError):
    exit_code = ExitCode.MODEL


class ScanError(TritonPackError):
    exit_code = ExitCode.SCAN


class ResolveError(TritonPackError):
    exit_code = ExitCode.RESOLVE


class LockError(TritonPackError):
    exit_code = ExitCode.LOCK


class TargetError(TritonPackError):
    exit_code = ExitCode.TARGET


class BuildError(TritonPackError):
    exit_code = ExitCode.BUILD


class PackError(TritonPackError):
    exit_code = ExitCode.PACK


class ConfigPatchError(TritonPackError):
    exit_code = ExitCode.CONFIG


class VerifyLoadError(TritonPackError):
    exit_code = ExitCode.VERIFY_LOAD


class VerifyInferError(TritonPackError):
    exit_code = ExitCode.VERIFY_INFER


class VerifyInputsError(VerifyInferError):
    """The environment is fine (the model loaded); the model's code refused synthesized inputs:
    a pipeline can tell this from a broken environment by the exit code."""

    exit_code = ExitCode.VERIFY_INPUTS


class ModelBugError(TritonPackError):
    """model.py raised an error no input can cause (NameError, UnboundLocalError, a
    SyntaxError, a module without the attribute the code uses): neither the environment's fault
    nor the inputs', so a pipeline can tell it from both by the exit code."""

    exit_code = ExitCode.MODEL_BUG


class RuntimeMissingError(TritonPackError):
    exit_code = ExitCode.RUNTIME


class BusyError(TritonPackError):
    exit_code = ExitCode.BUSY


class CacheError(TritonPackError):
    exit_code = ExitCode.CACHE


class RemoteCacheError(TritonPackError):
    exit_code = ExitCode.REMOTE


class RemoteIntegrityError(RemoteCacheError):
    """A registry served content that does not match its digest: never used, never skipped."""


class ProcessError(TritonPackError):
    """An external command failed; the stage that ran it re-raises with its own class."""

    exit_code = ExitCode.BUILD

    def __init__(self, argv: list[str], returncode: int, output: str):
        super().__init__(
            f"{argv[0]} exited with status {returncode}",
            detail=f"$ {' '.join(argv)}\n{output}",
        )
        self.argv = argv
        self.returncode = returncode
        self.output = output


class ProcessTimeout(ProcessError):
    """An external command ran past its deadline (``packer.core.deadlines``); it was stopped
    with every process it started."""

    def __init__(self, argv: list[str], seconds: float, output: str):
        super().__init__(argv, -1, f"timed out after {seconds:.0f}s\n{output}")
        self.message = f"{argv[0]} did not finish within {seconds:.0f} s"
        self.seconds = seconds
