"""Public holidays as deploy freezes, through the `holidays` package.

The package knows the holidays of every country and subdivision it supports; it returns
dates only, and names them in the machine's locale unless told a language. Both facts
shape this module: a holiday becomes a whole-day freeze in the window's time zone (the
caller's job), and the language defaults to English so that a status line reads the same
on every worker.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from types import ModuleType

_DEFAULT_LANGUAGE = "en_US"


def _calendars() -> ModuleType:
    """The `holidays` package, imported on first use: it takes about half a second to
    import, which every command line call that loads a plan would pay, holidays or not.
    The worker passes it through the workflow sandbox (`shiprail.worker`), so a workflow
    that asks for a calendar gets the module the process already holds."""
    import holidays

    return holidays


def check_holidays(
    country: str, subdiv: str | None, categories: tuple[str, ...], language: str | None
) -> None:
    """Raise ValueError with a message a person can act on when the calendar is unknown."""
    supported = _calendars().list_supported_countries()
    if country not in supported:
        close = [c for c in supported if c.lower() == country.lower()]
        hint = (
            f"; did you mean {close[0]!r}?" if close else " (use an ISO 3166-1 alpha-2 code such as DE or US)"
        )
        raise ValueError(f"no holiday calendar for country {country!r}{hint}")
    if subdiv is not None and subdiv not in supported[country]:
        known = ", ".join(supported[country][:12]) + (", …" if len(supported[country]) > 12 else "")
        raise ValueError(f"{country} has no subdivision {subdiv!r} (known: {known})")
    calendar = _calendars().country_holidays(country, subdiv=subdiv)
    unknown = sorted(set(categories) - set(calendar.supported_categories))
    if unknown:
        raise ValueError(
            f"{country} has no holiday categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}"
            f" (known: {', '.join(calendar.supported_categories)})"
        )
    if language is not None and language not in (calendar.supported_languages or ()):
        known_languages = ", ".join(calendar.supported_languages or ()) or "only the default"
        raise ValueError(f"{country} holiday names have no language {language!r} (known: {known_languages})")


@lru_cache(maxsize=256)
def holidays_in(
    country: str, subdiv: str | None, categories: tuple[str, ...], language: str | None, year: int
) -> tuple[tuple[date, str], ...]:
    """The holidays of one year as (date, name), sorted; cached, since every step start of
    every rollout asks again."""
    calendar = _calendars().country_holidays(
        country,
        subdiv=subdiv,
        years=year,
        categories=categories,
        language=language or _pick_language(country),
    )
    return tuple(sorted(calendar.items()))


def _pick_language(country: str) -> str | None:
    languages = _calendars().country_holidays(country).supported_languages or ()
    if _DEFAULT_LANGUAGE in languages:
        return _DEFAULT_LANGUAGE
    english = [lang for lang in languages if lang.startswith("en")]
    return english[0] if english else None
