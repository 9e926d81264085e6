"""What a player shows for each alternate track: ``LANGUAGE``, ``NAME``, ``DEFAULT``, ...

The source's tags are ISO 639-2 codes (``eng``, ``fre``/``fra``) in Matroska and MP4;
HLS wants BCP 47 (RFC 5646), whose rule is the shortest ISO 639 code: the two-letter
ISO 639-1 code where one exists, else the three-letter code itself. ``und`` when the
tag is missing or says nothing. Names are the language's own name ("Français"), or the
track's title tag when it has one ("Commentary"), made distinct within a group because
a player lists them side by side.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace

from transcoder.probe import Track

UNDETERMINED = "und"
# ISO 639-2 (bibliographic and terminology codes) -> (ISO 639-1, the language's own name).
LANGUAGES: dict[str, tuple[str, str]] = {
    "ara": ("ar", "العربية"),
    "bul": ("bg", "Български"),
    "cat": ("ca", "Català"),
    "ces": ("cs", "Čeština"),
    "cze": ("cs", "Čeština"),
    "chi": ("zh", "中文"),
    "zho": ("zh", "中文"),
    "dan": ("da", "Dansk"),
    "deu": ("de", "Deutsch"),
    "ger": ("de", "Deutsch"),
    "ell": ("el", "Ελληνικά"),
    "gre": ("el", "Ελληνικά"),
    "eng": ("en", "English"),
    "est": ("et", "Eesti"),
    "eus": ("eu", "Euskara"),
    "baq": ("eu", "Euskara"),
    "fas": ("fa", "فارسی"),
    "per": ("fa", "فارسی"),
    "fin": ("fi", "Suomi"),
    "fra": ("fr", "Français"),
    "fre": ("fr", "Français"),
    "glg": ("gl", "Galego"),
    "heb": ("he", "עברית"),
    "hin": ("hi", "हिन्दी"),
    "hrv": ("hr", "Hrvatski"),
    "hun": ("hu", "Magyar"),
    "ind": ("id", "Bahasa Indonesia"),
    "isl": ("is", "Íslenska"),
    "ice": ("is", "Íslenska"),
    "ita": ("it", "Italiano"),
    "jpn": ("ja", "日本語"),
    "kor": ("ko", "한국어"),
    "lav": ("lv", "Latviešu"),
    "lit": ("lt", "Lietuvių"),
    "msa": ("ms", "Bahasa Melayu"),
    "may": ("ms", "Bahasa Melayu"),
    "nld": ("nl", "Nederlands"),
    "dut": ("nl", "Nederlands"),
    "nor": ("no", "Norsk"),
    "nob": ("nb", "Norsk bokmål"),
    "nno": ("nn", "Norsk nynorsk"),
    "pol": ("pl", "Polski"),
    "por": ("pt", "Português"),
    "ron": ("ro", "Română"),
    "rum": ("ro", "Română"),
    "rus": ("ru", "Русский"),
    "slk": ("sk", "Slovenčina"),
    "slo": ("sk", "Slovenčina"),
    "slv": ("sl", "Slovenščina"),
    "spa": ("es", "Español"),
    "srp": ("sr", "Српски"),
    "swe": ("sv", "Svenska"),
    "tha": ("th", "ไทย"),
    "tur": ("tr", "Türkçe"),
    "ukr": ("uk", "Українська"),
    "vie": ("vi", "Tiếng Việt"),
}
NAMES = {code: name for code, name in LANGUAGES.values()}
# ISO 639-2 codes that say nothing about the language.
NO_LANGUAGE = frozenset({"", "und", "mis", "mul", "zxx", "qaa"})
BCP47 = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")

DESCRIBES_VIDEO = "public.accessibility.describes-video"
SDH = (
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
)
# A commentary is not an accessibility track: marking it describes-video would hand it to
# a blind viewer's player in place of the film's audio. AVFoundation's own characteristic.
AUXILIARY = "public.auxiliary-content"


@dataclass(frozen=True)
class Alternate:
    """The ``EXT-X-MEDIA`` attributes of one rendition of an audio or subtitles group."""

    language: str
    name: str
    default: bool = False
    autoselect: bool = True
    forced: bool = False
    characteristics: str | None = None
    channels: str = "2"


def bcp47(tag: str | None) -> str:
    """``eng`` -> ``en``, ``fre``/``fra`` -> ``fr``, ``pt-BR`` kept, unknown -> ``und``."""
    text = (tag or "").strip().replace("_", "-")
    lower = text.lower()
    if lower in NO_LANGUAGE:
        return UNDETERMINED
    if lower in LANGUAGES:
        return LANGUAGES[lower][0]
    if BCP47.match(text):
        primary, _, rest = text.partition("-")
        primary = LANGUAGES.get(primary.lower(), (primary.lower(), ""))[0]
        return f"{primary}-{rest}" if rest else primary
    return UNDETERMINED


def language_name(language: str) -> str | None:
    return NAMES.get(language.partition("-")[0])


def audio_alternates(tracks: list[Track]) -> list[Alternate]:
    """One per audio track: exactly one DEFAULT (the first the source marks default, else
    the first track), commentaries not auto-selected."""
    default = _default_position(tracks)
    made = []
    for position, track in enumerate(tracks):
        qualifier: str | None = "commentary" if track.comment else None
        characteristics: str | None
        if track.visual_impaired:
            qualifier, characteristics = "audio description", DESCRIBES_VIDEO
        else:
            characteristics = AUXILIARY if track.comment else None
        is_default = position == default
        made.append(
            Alternate(
                language=bcp47(track.language),
                name=_name(track, "Audio", qualifier),
                default=is_default,
                autoselect=is_default or not track.comment,
                characteristics=characteristics,
            )
        )
    return _distinct(made)


def surround_alternate(stereo: Alternate) -> Alternate:
    """The 5.1 rendition of a track: as its stereo one, named "<name> 5.1", 6 channels."""
    return replace(stereo, name=f"{stereo.name} 5.1", channels="6")


def subtitle_alternates(tracks: list[Track]) -> list[Alternate]:
    """One per text subtitle track. DEFAULT=YES only for a forced track the source marks
    default (subtitles a viewer did not ask for are shown only when forced)."""
    made = []
    for track in tracks:
        qualifier = "forced" if track.forced else ("SDH" if track.hearing_impaired else None)
        made.append(
            Alternate(
                language=bcp47(track.language),
                name=_name(track, "Subtitles", qualifier),
                default=track.forced and track.default,
                autoselect=True,
                forced=track.forced,
                characteristics=SDH if track.hearing_impaired else None,
            )
        )
    if sum(a.default for a in made) > 1:  # at most one DEFAULT=YES in a group
        first = next(i for i, a in enumerate(made) if a.default)
        made = [_with(a, default=i == first) for i, a in enumerate(made)]
    return _distinct(made)


def _default_position(tracks: list[Track]) -> int:
    return next((i for i, track in enumerate(tracks) if track.default), 0)


def _name(track: Track, fallback: str, qualifier: str | None) -> str:
    title = (track.title or "").strip()
    if title:
        return title
    base = language_name(bcp47(track.language)) or fallback
    return f"{base} ({qualifier})" if qualifier else base


def _distinct(alternates: list[Alternate]) -> list[Alternate]:
    """Two tracks with the same name become "English", "English 2"."""
    counts = Counter(a.name for a in alternates)
    seen: Counter[str] = Counter()
    result = []
    for alternate in alternates:
        seen[alternate.name] += 1
        if counts[alternate.name] > 1 and seen[alternate.name] > 1:
            alternate = _with(alternate, name=f"{alternate.name} {seen[alternate.name]}")
        result.append(alternate)
    return result


def _with(alternate: Alternate, **changes: object) -> Alternate:
    return replace(alternate, **changes)  # type: ignore[arg-type]
