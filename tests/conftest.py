"""Test-session setup: jaxtyping's runtime shape and dtype checks for the vograd core.

The import hook decorates every function and dataclass of the listed modules
with ``jaxtyping.jaxtyped(typechecker=beartype)`` when they are first imported,
so it must run before anything imports vograd (pytest loads this file first).
A call whose arguments or return value contradict their annotations (a
``Float[Array, " P"]`` given ``[P, 2]``, an int for an array) raises.
"""

from jaxtyping import install_import_hook

CHECKED = (
    "vograd.estimators",
    "vograd.unroll",
    "vograd.system",
    "vograd.joint",
    "vograd.sharding",
)
# Not hooked: vograd.train, vograd.outer and vograd.schedules check their own arguments and name the
# fix in their errors ("schedule must be a vograd Schedule"); a runtime type check
# would pre-empt those messages, which tests/test_train.py and test_schedules.py assert.

_hook = install_import_hook(CHECKED, "beartype.beartype")
