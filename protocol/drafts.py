"""Command drafts: a command as an operator gave it, before a client keys it.

A `CommandDraft` is exactly one of the `cadterm.protocol.commands` models without its
`idempotency_key` and `workstation`: those two belong to the client that sends it, not
to whoever wrote the command (the console's command line, a script). Every other field
is validated by the same rules as the command's, once, when the draft is made, so a
mistake is reported where it was typed. `CommandDraft.keyed` then adds the key and the
workstation and returns the command without checking the rest a second time.

The draft models are derived from the command models, field for field, so the two can
never drift apart; the server still validates every command strictly at its door.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model, model_validator

from .commands import COMMAND_TYPES, Command, CommandBase

__all__ = ["DRAFT_ADAPTER", "DRAFT_TYPES", "CommandDraft", "draft", "draft_of"]

#: The fields a client adds to a draft to make it a command.
_KEYING = ("idempotency_key", "workstation")


#: Checks the two fields a client adds, by the rules `CommandBase` gives them.
_Keying = create_model(  # type: ignore[call-overload]
    "Keying",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (CommandBase.model_fields[name].annotation, CommandBase.model_fields[name])
        for name in _KEYING
    },
)


class CommandDraft(BaseModel):
    """A command without its idempotency key and workstation; see the module notes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str

    def keyed(self, idempotency_key: str, workstation: str) -> Command:
        """The command this draft becomes with `idempotency_key` from `workstation`.

        Only the two new fields are checked here: the rest was validated when the draft
        was made, and is carried over as it is.
        """
        keying = _Keying(idempotency_key=idempotency_key, workstation=workstation)
        values = {name: getattr(self, name) for name in type(self).model_fields}
        command_type = COMMAND_TYPES[self.type]
        return command_type.model_construct(  # type: ignore[return-value]
            self.model_fields_set | set(_KEYING), **values, **dict(keying)
        )


def _draft_model(command_type: type[CommandBase]) -> type[CommandDraft]:
    """The draft model of `command_type`: the same fields, less the keying ones.

    Checks that span fields (a closed report needs a reason) come along too, so a draft
    is refused for them where it was typed, as the command would be.
    """
    fields: dict[str, Any] = {
        name: (field.annotation, field)
        for name, field in command_type.model_fields.items()
        if name not in _KEYING
    }
    validators = {
        name: model_validator(mode=decorator.info.mode)(decorator.func)
        for name, decorator in command_type.__pydantic_decorators__.model_validators.items()
    }
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{command_type.__name__}Draft",
        __base__=CommandDraft,
        __doc__=command_type.__doc__,
        __module__=__name__,
        __validators__=validators,
        **fields,
    )


#: The draft model of every command type, by its `type`.
DRAFT_TYPES: dict[str, type[CommandDraft]] = {
    kind: _draft_model(command_type) for kind, command_type in COMMAND_TYPES.items()
}

#: Reads any draft from plain data, told apart by its `type` field.
DRAFT_ADAPTER: TypeAdapter[CommandDraft] = TypeAdapter(
    Annotated[Union[tuple(DRAFT_TYPES.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
)


def draft(type: str, **fields: Any) -> CommandDraft:
    """A validated draft of a `type` command; raises pydantic's `ValidationError`."""
    try:
        model = DRAFT_TYPES[type]
    except KeyError:
        raise ValueError(f"unknown command type {type!r}") from None
    return model(type=type, **fields)


def draft_of(command: Command) -> CommandDraft:
    """The draft of `command`: the command less its key and workstation (not re-checked)."""
    model = DRAFT_TYPES[command.type]
    values = {name: getattr(command, name) for name in model.model_fields}
    return model.model_construct(command.model_fields_set - set(_KEYING), **values)
