"""Keep third-party chatter out of a training run's output.

Lightning prints advertising tips ("💡 Tip: ... try installing litlogger / litmodels") at INFO level, and
calls into a part of ``torch.utils._pytree`` that torch deprecates (a ``FutureWarning`` about ``LeafSpec``
on every run, which no user of cscnn can act on). :func:`quiet_third_party` drops exactly these, where they
arise; every other message, cscnn's own warnings and Lightning's useful ones included, stays.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_third_party", "is_advert"]

#: the loggers Lightning's ``rank_zero_info`` writes to (fabric's and pytorch's)
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
#: third-party deprecation warnings raised inside Lightning's own code paths: (message regex, category)
_DEPRECATIONS = ((r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),)


def is_advert(record: logging.LogRecord) -> bool:
    """True for Lightning's advertising tips (messages that start with "💡 Tip:")."""
    return str(record.getMessage()).lstrip().startswith("💡 Tip:")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_advert(record)


_FILTER = _DropAdverts()


def quiet_third_party() -> None:
    """Install the filters (idempotent): Lightning's tips are dropped, the listed third-party deprecation
    warnings ignored."""
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for message, category in _DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=category)
