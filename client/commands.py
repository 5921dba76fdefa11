"""Sending commands over HTTP: idempotency keys, safe retries, typed refusals.

A command keeps its idempotency key across every retry, so retrying after a timeout
(when the first try may or may not have landed) can never apply it twice: the server
answers a repeat with the first result. Transient failures (connection errors,
timeouts, 5xx, 429) are retried with backoff across every backend URL; refusals are
raised at once as the typed errors of `cadterm.client.errors`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence

import httpx
from pydantic import ValidationError

from cadterm.protocol.commands import MAX_BATCH_COMMANDS, BatchResult, Command, CommandResult
from cadterm.protocol.domain import Operator
from cadterm.protocol.problems import Problem, ProblemCode

from .backoff import Backoff
from .errors import BackendUnavailable, CommandError, RateLimited, error_for_problem

__all__ = ["Answer", "CommandSender", "new_key"]

#: The most JSON one batch request carries: under the server's default `max_body_bytes`
#: (65,536), with room for the envelope.
BATCH_BYTES = 60_000

#: What `CommandSender.send_many` gives for each command: its result or its error.
Answer = CommandResult | CommandError | BackendUnavailable


def new_key() -> str:
    """A fresh idempotency key."""
    return uuid.uuid4().hex


class CommandSender:
    """Posts commands to the first backend that answers, retrying what is transient."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise ValueError("give at least one backend URL")
        self.urls = [url.rstrip("/") for url in urls]
        self.attempts = attempts
        self.backoff = backoff or Backoff(base=0.1, cap=2.0)
        self._rng = rng or random.Random()
        self._preferred = 0
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def prefer(self, index: int) -> None:
        """Try backend number `index` first (the one the live stream is on)."""
        self._preferred = index % len(self.urls)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def whoami(self) -> Operator:
        """The operator this client's token belongs to (raises like `send`)."""
        last_failure = "no attempt made"
        for attempt in range(len(self.urls)):
            url = self.urls[(self._preferred + attempt) % len(self.urls)]
            try:
                response = await self._http.get(f"{url}/v1/whoami")
            except httpx.TransportError as exc:
                last_failure = f"{url}: {type(exc).__name__}: {exc or 'no detail'}"
                continue
            if response.status_code == 200:
                return Operator.model_validate_json(response.content)
            raise error_for_problem(_problem(response))
        raise BackendUnavailable(f"whoami not answered: {last_failure}")

    async def send(self, command: Command) -> CommandResult:
        """Send `command` until a backend gives a definite answer.

        Returns the server's result (whose `seq` names the event to wait for). Raises a
        `CommandError` subclass when the server refuses it, and `BackendUnavailable`
        when no backend gave an answer in `attempts` tries.
        """
        response = await self._deliver(
            "/v1/commands", command.model_dump_json(exclude_none=True), f"command {command.type}"
        )
        return CommandResult.model_validate_json(response.content)

    async def send_many(self, commands: Sequence[Command]) -> list[Answer]:
        """Send `commands` in order, in as few requests as the batch limits allow.

        A request carries at most `MAX_BATCH_COMMANDS` commands and `BATCH_BYTES` of
        JSON (under the server's default body limit), so long notes go in more requests.
        Returns, for each command in order, its result or the typed error it would have
        raised from `send` (`BackendUnavailable` for one no backend decided). A command
        the backend could not decide (a `5xx` answer) is sent again with its key, with
        the others still undecided. Raises when the whole batch is refused (a malformed
        command: `InvalidCommand`; over the rate limit after `attempts`: `RateLimited`)
        or no backend answered at all (`BackendUnavailable`).
        """
        parts = [command.model_dump_json(exclude_none=True) for command in commands]
        sizes = [len(part.encode()) + 1 for part in parts]  # each with its comma
        answers: list[Answer] = []
        start = 0
        while start < len(parts):
            end, size = start + 1, sizes[start]
            while (
                end < len(parts)
                and end - start < MAX_BATCH_COMMANDS
                and size + sizes[end] <= BATCH_BYTES
            ):
                size += sizes[end]
                end += 1
            answers.extend(await self._send_batch(commands[start:end], parts[start:end]))
            start = end
        return answers

    async def _send_batch(self, commands: Sequence[Command], parts: Sequence[str]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(commands)
        undecided, why = list(range(len(commands))), "no attempt made"
        for attempt in range(1, self.attempts + 1):
            body = f'{{"commands":[{",".join(parts[i] for i in undecided)}]}}'
            response = await self._deliver("/v1/commands/batch", body, f"{len(undecided)} commands")
            replies = BatchResult.model_validate_json(response.content).answers
            still = []
            for index, reply in zip(undecided, replies, strict=True):
                if isinstance(reply.body, CommandResult):
                    answers[index] = reply.body
                elif reply.status >= 500 or reply.status == 408:  # nothing was decided
                    still.append(index)
                    why = f"{reply.status} {reply.body.detail}"
                else:
                    answers[index] = error_for_problem(reply.body)
            undecided = still
            if not undecided:
                break
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff.delay(attempt, self._rng))
        for index in undecided:
            answers[index] = BackendUnavailable(
                f"command {commands[index].type} not delivered: {why}"
            )
        return answers  # type: ignore[return-value]  # every slot is filled by now

    async def _deliver(self, path: str, body: str, what: str) -> httpx.Response:
        """POST `body` to `path` until a backend answers 200; raise on a refusal."""
        last_failure = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            url = self.urls[(self._preferred + attempt - 1) % len(self.urls)]
            try:
                response = await self._http.post(
                    f"{url}{path}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                last_failure = f"{url}: {type(exc).__name__}: {exc or 'no detail'}"
            else:
                if response.status_code == 200:
                    return response
                problem = _problem(response)
                # 408: the request was too slow to arrive (a thin link); 5xx: the backend
                # failed. Neither decided anything, and the key makes a retry safe.
                if response.status_code >= 500 or response.status_code == 408:
                    last_failure = f"{url}: {response.status_code} {problem.detail}"
                elif response.status_code == 429:
                    wait = _retry_after(response)
                    if attempt == self.attempts:
                        raise RateLimited(problem, wait)
                    await asyncio.sleep(wait)
                    continue
                else:
                    raise error_for_problem(problem)
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff.delay(attempt, self._rng))
        raise BackendUnavailable(f"{what} not delivered: {last_failure}")


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _problem(response: httpx.Response) -> Problem:
    """The problem document in a refusal, or one describing a reply that had none."""
    try:
        return Problem.model_validate_json(response.content)
    except ValidationError:
        code = ProblemCode.INTERNAL if response.status_code >= 500 else ProblemCode.NOT_FOUND
        problem = Problem.of(
            code, f"HTTP {response.status_code}: {response.text[:200] or 'no body'}"
        )
        problem.status = response.status_code
        return problem
