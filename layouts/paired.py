"""Any release whose images and masks pair by name, when no format recognises it (BUSI, CHASE_DB1, STARE,
HRF, PH2, Montgomery, DeepGlobe, Cambridge's CamVid, ...). The pairing is learned from the names:

    a mask is named like its image plus a suffix the set shares (<name>_1stHO.png beside <name>.jpg,
    labels-ah/<name>.ah.ppm for stare-images/<name>.ppm), or is the file of the image's name in another
    folder (masks/<name>.png); an image may carry a tag of its own (<id>_sat.jpg + <id>_mask.png), and
    folders may be named after the image (PH2's IMD002/IMD002_lesion/IMD002_lesion.bmp).

Every way in which two files' names relate (a Rule: the folders that differ, the tags after the shared
name) is counted over the folder. Of a pair, the file holding LEVELS_RATIO times fewer distinct values
(at most MASK_LEVELS) is the mask. Rules with the best rule's images that pair at least half as many are
the candidates (`choose`). The id is the image's path under --data_dir without its extension; what a
mask's values mean is layouts/paired_masks.py's.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from layouts import paired_masks
from layouts.core import IMAGE_SUFFIXES, LOSSY_SUFFIXES, YOUR_OWN_DATA, DataLayout, is_junk, no_split
from utils import UserError, reading

SEPARATORS = "_-. "  # a tag starts with one of these: _mask, -mask, .ah, " mask"
DEPTH = 4  # folders below --data_dir searched
MAX_GROUP = 16  # more files sharing one name: it is no image's name (img_1, img_2, ... share "img")
MASK_LEVELS = 256  # a mask holds at most this many distinct values (or colours) ...
LEVELS_RATIO = 4  # ... and this many times fewer than its image
SAMPLES = 3  # pairs read to tell masks from images, and to compare candidates
AGREE = 0.5  # two candidates whose masks overlap this much (IoU) are two annotators of one thing
APART = 0.01  # ... and ones that share at most this fraction of the smaller mask are parts of it
SAME_REGION = 0.9  # a candidate whose masks are this alike (IoU) in every image is a field of view
FIELD_AREA = 0.3  # ... covering at least this fraction of the image
MANY = 5  # examples named in notes and errors
DIR = "<dir>"  # in a side's folders: any folder name (train/ + trainannot/ -> <dir>/ + <dir>annot/)


@dataclass(frozen=True)
class Side:
    """One side of a pairing: the folders that differ from the other side's ("{}" = the name) and the
    tag after the name in the file's stem."""

    folder: tuple[str, ...]
    tag: str

    def text(self, suffix: str = ".*") -> str:
        return "/".join((*self.folder, f"{{}}{self.tag}{suffix}")).replace("{}", "<name>")

    def matches(self, path: Path, root: Path) -> bool:
        """Whether a file could be on this side: its stem ends with the tag, its folders hold the side's."""
        stem, parts = path.stem, path.relative_to(root).parent.parts
        name = stem[: len(stem) - len(self.tag)] if self.tag else stem
        if not name or not stem.lower().endswith(self.tag.lower()):
            return False
        parts, n = templated(parts, name), len(self.folder)
        return any(all(map(part_matches, self.folder, parts[i : i + n])) for i in range(len(parts) - n + 1))

    def names(self, choice: str) -> bool:
        """Whether --masks `choice` names this side: its tag, a folder of it, or its pattern."""
        choice = choice.strip("/").lower()
        folders = [p.lower().replace(DIR, "") for p in self.folder]
        return choice in {self.tag.lower(), "/".join(folders), *folders}


def part_matches(pattern: str, part: str) -> bool:
    """A folder of a side's pattern against a file's folder: "<dir>annot" matches "trainannot"."""
    if pattern.startswith(DIR):
        return part.endswith(pattern[len(DIR) :]) and len(part) > len(pattern) - len(DIR)
    return pattern == part


@dataclass(frozen=True)
class Rule:
    image: Side
    mask: Side

    def text(self, example: tuple[Path, Path] | None = None) -> str:
        """`masks/<name>.png for images/<name>.jpg`, `<name>_mask.png beside <name>.png`."""
        image, mask = (p.suffix for p in example) if example else (".*", ".*")
        where = "beside" if not self.image.folder and not self.mask.folder else "for"
        return f"{self.mask.text(mask)} {where} {self.image.text(image)}"

    def choice(self) -> str:
        """What --masks takes to choose this rule: its tag, else its folder."""
        return self.mask.tag or "/".join(self.mask.folder).replace("{}", "<name>")


Pairs = dict[Path, Path]  # image -> mask


# Learning the rules from the names


def image_files(root: Path) -> list[Path]:
    """Files of an image suffix under root, DEPTH folders down, junk (._*, __MACOSX, hidden) left out."""
    found, folders = [], [root]
    for _ in range(DEPTH + 1):
        below = []
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if is_junk(path):
                    continue
                if path.is_dir():
                    below.append(path)
                elif path.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(path)
        folders = below
    return found


def name_splits(stem: str) -> list[tuple[str, str]]:
    """The ways a stem is a name and a tag: (stem, "") and a cut before each separator after the first
    character ("benign (1)_mask" -> "benign" + " (1)_mask", "benign (1)" + "_mask")."""
    return [(stem, "")] + [(stem[:i], stem[i:]) for i in range(1, len(stem)) if stem[i] in SEPARATORS]


def templated(parts: tuple[str, ...], name: str) -> tuple[str, ...]:
    """Folders with the name written "{}" where a folder is named after it (IMD002_lesion -> {}_lesion)."""
    return tuple(
        "{}" + p[len(name) :] if p == name or (p.startswith(name) and p[len(name)] in SEPARATORS) else p
        for p in parts
    )


def differing(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The folders of a and b that differ: the common leading and trailing folders cut off; a folder
    named as the other plus more is written with DIR for the other's name."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    mid_a, mid_b = a[start : len(a) - end], b[start : len(b) - end]
    if len(mid_a) == len(mid_b) == 1:  # train/ + trainannot/, val/ + valannot/: one rule, <dir>annot/
        x, y = mid_a[0], mid_b[0]
        short, long = sorted((x, y), key=len)
        if len(short) >= 2 and len(long) >= len(short) + 2 and long.startswith(short) and "{}" not in long:
            rest = DIR + long[len(short) :]
            mid_a, mid_b = ((DIR,), (rest,)) if x == short else ((rest,), (DIR,))
    return mid_a, mid_b


def name_rules(files: list[Path], root: Path) -> dict[Rule, dict[Path, list[Path]]]:
    """Every rule by which one file's name gives another's, with the pairs it makes (first -> seconds)."""
    groups = defaultdict(list)
    for path in files:
        parts = path.relative_to(root).parent.parts
        for name, tag in name_splits(path.stem):
            groups[name].append((path, templated(parts, name), tag))
    rules: dict[Rule, dict[Path, list[Path]]] = defaultdict(dict)
    for members in groups.values():
        if len(members) > MAX_GROUP:
            continue
        for first, folder_a, tag_a in members:
            for second, folder_b, tag_b in members:
                mid_a, mid_b = differing(folder_a, folder_b)
                if first != second and (mid_a, tag_a) != (mid_b, tag_b):
                    rule = Rule(Side(mid_a, tag_a), Side(mid_b, tag_b))
                    rules[rule].setdefault(first, []).append(second)
    return rules


def levels(path: Path, cache: dict[Path, int]) -> int:
    """How many distinct values (colours) a file holds, on at most a million pixels; a JPEG whose pixels
    are near two levels (Kvasir-SEG's masks) counts 2."""
    if path not in cache:
        with reading(path, "file", "check that it opens in an image viewer"), Image.open(path) as image:
            image.draft("RGB", (1024, 1024))  # JPEG: decoded at a reduced size
            pixels = np.asarray(image)
        step = max(1, int(np.sqrt(pixels.shape[0] * pixels.shape[1] / 1e6)))
        pixels = pixels[::step, ::step]
        flat = pixels.reshape(-1, pixels.shape[2]) if pixels.ndim == 3 else pixels.reshape(-1, 1)
        count = len(np.unique(flat, axis=0))
        if path.suffix.lower() in LOSSY_SUFFIXES:
            grey = flat[:, :3].mean(1)
            count = 2 if ((grey <= 64) | (grey >= 191)).mean() >= 0.995 else count
        cache[path] = count
    return cache[path]


def holds_masks(pairs: dict[Path, list[Path]], cache: dict[Path, int]) -> bool:
    """Whether the seconds of these pairs are the masks of the firsts (read on SAMPLES pairs)."""
    firsts = sorted(pairs)
    for first in firsts[:: max(1, len(firsts) // SAMPLES)][:SAMPLES]:
        mask, image = levels(pairs[first][0], cache), levels(first, cache)
        if mask > MASK_LEVELS or mask * LEVELS_RATIO > image:
            return False
    return True


def rank(item: tuple[Rule, dict]) -> tuple:
    """Most pairs first; then the shortest tags (the longest names), then by the rule's text."""
    rule, pairs = item
    return -len(pairs), len(rule.image.tag + rule.mask.tag), rule.text()


def mask_rules(files: list[Path], root: Path) -> list[tuple[Rule, dict[Path, list[Path]]]]:
    """The rules that pair images with masks, ranked (`rank`)."""
    ranked = sorted(name_rules(files, root).items(), key=rank)
    cache: dict[Path, int] = {}
    found = []
    for rule, pairs in ranked[:24]:  # a rule and its reverse pair alike: the file contents tell them apart
        if len(pairs) > 1 and holds_masks(pairs, cache):
            found.append((rule, pairs))
    return found


# Choosing among candidates


@dataclass(frozen=True)
class Choice:
    rules: tuple[Rule, ...]  # one, or several parts (one class each)
    pairs: tuple[Pairs, ...]  # per rule
    notes: tuple[str, ...]
    others: tuple[Rule, ...]  # candidates not taken (annotators, a field of view): no images


def single(pairs: dict[Path, list[Path]], rule: Rule) -> Pairs:
    """image -> mask; UserError naming the files where a rule gives an image two masks or a mask two
    images (x.jpg and x.png beside masks/x.png)."""
    owners = defaultdict(list)
    for image, masks in pairs.items():
        if len(masks) > 1:
            raise UserError(
                f"{image} has {len(masks)} masks by the rule {rule.text()}: {', '.join(map(str, masks[:3]))}:"
                " keep one of them"
            )
        owners[masks[0]].append(image)
    twice = [(mask, images) for mask, images in owners.items() if len(images) > 1]
    if twice:
        mask, images = twice[0]
        raise UserError(
            f"cannot pair the images and masks by name: {mask} could be the mask of "
            f"{' or '.join(map(str, images))}: rename the files so that each mask names one image "
            f"({YOUR_OWN_DATA})"
        )
    return {image: masks[0] for image, masks in pairs.items()}


def foreground(path: Path) -> np.ndarray:
    """bool HxW: where a mask marks anything (value above 0; a JPEG's grey >= 128; a colour not black)."""
    with reading(path, "mask", "check that it opens in an image viewer"), Image.open(path) as image:
        pixels = np.asarray(image.convert("L") if image.mode == "P" else image)
    if pixels.ndim == 3:
        pixels = pixels[..., :3].max(-1)
    return pixels >= 128 if path.suffix.lower() in LOSSY_SUFFIXES else pixels > 0


def overlaps(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(IoU, intersection / the smaller area) of two bool masks; (0, 0) for masks of other sizes."""
    if a.shape != b.shape:
        return 0.0, 0.0
    both, either = (a & b).sum(), (a | b).sum()
    return float(both / max(either, 1)), float(both / max(min(a.sum(), b.sum()), 1))


def is_field_of_view(pairs: Pairs) -> bool:
    """Whether a candidate's masks mark about the same large region in every image (HRF's mask/)."""
    masks = [foreground(pairs[image]) for image in sorted(pairs)[:SAMPLES]]
    return len(masks) > 1 and all(
        m.mean() >= FIELD_AREA and overlaps(masks[0], m)[0] >= SAME_REGION for m in masks[1:]
    )


def is_numbered(side: Side, tags: set[tuple[tuple[str, ...], str]]) -> bool:
    """Whether a side's tag is another's numbered (_mask_1 beside _mask: a second mask of one image)."""
    number = re.search(r"_\d+$", side.tag)
    return bool(number) and (side.folder, side.tag[: number.start()].lower()) in tags


def relation(candidates: list[tuple[Rule, Pairs]]) -> str:
    """ "agree" (annotators of one thing), "apart" (parts: never overlapping) or "unclear", read on up to
    SAMPLES images that every candidate pairs."""
    shared = sorted(set.intersection(*(set(pairs) for _, pairs in candidates)))[:SAMPLES]
    if not shared:
        return "unclear"
    found = set()
    for image in shared:
        masks = [foreground(pairs[image]) for _, pairs in candidates]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                iou, shared_part = overlaps(masks[i], masks[j])
                found.add("agree" if iou >= AGREE else "apart" if shared_part <= APART else "unclear")
    return found.pop() if len(found) == 1 else "unclear"


def choose(found: list[tuple[Rule, dict[Path, list[Path]]]], root: Path, masks: str | None) -> Choice:
    """The rule(s) the masks are read by: the candidates of the best rule's images (see the module's
    docstring); --masks `masks` keeps the candidates it names. UserError where the choice is unclear."""
    image_side = found[0][0].image
    candidates = [(rule, pairs) for rule, pairs in found if rule.image == image_side]
    if masks is not None:
        named = [(rule, pairs) for rule, pairs in candidates if rule.mask.names(masks)]
        if not named:
            raise UserError(
                f"--masks {masks}: no masks of {root} are named so; the masks found: "
                + "; ".join(f"--masks {r.choice()} ({r.text()}, {len(p)} images)" for r, p in candidates)
            )
        candidates = named
    else:
        best = len(candidates[0][1])
        candidates = [(rule, pairs) for rule, pairs in candidates if 2 * len(pairs) >= best]
        tags = {(rule.mask.folder, rule.mask.tag.lower()) for rule, _ in candidates}
        candidates = [(rule, pairs) for rule, pairs in candidates if not is_numbered(rule.mask, tags)]
    candidates = [(rule, single(pairs, rule)) for rule, pairs in candidates]
    considered, notes = [rule for rule, _ in candidates], []
    if len(candidates) > 1 and masks is None:
        fields = [rule for rule, pairs in candidates if is_field_of_view(pairs)]
        if fields and len(fields) < len(candidates):
            notes += [f"{rule.text()}: the same region in every image (a field of view), not read as labels"
                      for rule in fields]  # fmt: skip
            candidates = [(rule, pairs) for rule, pairs in candidates if rule not in fields]
    rules = tuple(rule for rule, _ in candidates)
    kind = relation(candidates) if len(candidates) > 1 else "one"
    if kind == "agree":
        rules = (min(rules, key=lambda r: (-len(dict(candidates)[r]), r.choice())),)
        rest = [r for r, _ in candidates if r not in rules]
        notes.append(
            f"{len(candidates)} sets of masks mark the same objects (annotators): {rules[0].text()} is read, "
            f"as the first; choose another with {' or '.join(f'--masks {r.choice()}' for r in rest)}"
        )
    elif kind == "apart":
        notes.append(
            f"{len(candidates)} sets of masks that never overlap mark parts: one class each "
            f"({', '.join(paired_masks.part_name(r.choice()) for r in rules)}); --masks <one of "
            f"{', '.join(r.choice() for r in rules)}> reads one only"
        )
    elif kind == "unclear":
        raise UserError(
            f"several kinds of masks pair with the images of {root}: "
            + "; ".join(f"{r.text()} ({len(p)} images)" for r, p in candidates)
            + f": choose the labels with {' or '.join(f'--masks {r.choice()}' for r, _ in candidates)}"
        )
    others = tuple(rule for rule in considered if rule not in rules)
    return Choice(rules, tuple(dict(candidates)[r] for r in rules), tuple(notes), others)


# What is left out


def left_out(
    files: list[Path], root: Path, choice: Choice, extras: set[Path]
) -> tuple[dict[str, list], list[str]]:
    """The files that are neither a chosen image nor its mask, by why: "other masks" (a candidate not
    chosen), "masks without an image", "derived" (named like a paired image plus a suffix), "without a
    mask" (images beside paired ones), "no masks" (in folders without masks: unlabelled splits, ...)."""
    images = set(choice.pairs[0])
    used = images | {m for pairs in choice.pairs for m in pairs.values()} | extras
    stems = {(image.parent, image.stem) for image in images}
    paired_folders = {image.parent for image in images}
    rule = choice.rules[0]
    why: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        if path in used:
            continue
        if any(
            other.mask.matches(path, root) and (other.mask.tag or other.mask.folder)
            for other in choice.others
        ):
            why["other masks"].append(path)
        elif any(r.mask.matches(path, root) and (r.mask.tag or r.mask.folder) for r in choice.rules):
            why["masks without an image"].append(path)
        elif any((path.parent, name) in stems for name, _ in name_splits(path.stem)[1:]):
            why["derived"].append(path)
        elif path.parent in paired_folders and rule.image.matches(path, root):
            why["without a mask"].append(path)
        else:
            why["no masks"].append(path)
    return why, [leftover_note(kind, paths, root) for kind, paths in why.items() if paths]


def leftover_note(kind: str, paths: list[Path], root: Path) -> str:
    examples = ", ".join(str(p.relative_to(root)) for p in paths[:MANY])
    if kind == "no masks":
        folders = Counter(str(p.parent.relative_to(root)) for p in paths)
        where = ", ".join(f"{folder}/ ({count})" for folder, count in sorted(folders.items())[:MANY])
        return f"left out {len(paths)} image files of folders without masks (not trained on): {where}"
    what = {
        "other masks": "masks of another kind (see above)",
        "without a mask": "images without a mask",
        "derived": "files named after an image plus another suffix (derived files, not images)",
        "masks without an image": "masks without an image",
    }[kind]
    return f"left out {len(paths)} {what}: {examples}"


def numbered_extras(pairs: Pairs, files: list[Path]) -> dict[Path, tuple[Path, ...]]:
    """mask -> the further numbered masks of its image beside it (BUSI's <name>_mask_1.png): united."""
    masks = {(mask.parent, mask.stem.lower()): mask for mask in pairs.values()}
    extras = defaultdict(list)
    for path in files:
        numbered = re.fullmatch(r"(.+)_\d+", path.stem.lower())
        if numbered and (path.parent, numbered.group(1)) in masks:
            extras[masks[path.parent, numbered.group(1)]].append(path)
    return {mask: tuple(more) for mask, more in extras.items()}


# Nothing pairs: describe the folder


def nothing_pairs(root: Path, files: list[Path]) -> UserError:
    """The error when no rule pairs images with masks: what the folder holds and the closest names."""
    if not files:
        return UserError(
            f"no image files in {root} (searched {DEPTH} folders deep): pass the folder the release was "
            f"unpacked into ({YOUR_OWN_DATA} lists what is recognised), or prepare VOC-aug there with "
            f"`python tools/voc.py --data_dir {root}`"
        )
    folders = Counter(str(p.parent.relative_to(root)) for p in files)
    held = ", ".join(f"{f}/ ({n})" for f, n in folders.most_common(4)) + (", ..." if len(folders) > 4 else "")
    suffixes = Counter(p.suffix.lower() for p in files)
    close = []
    for path in files[: 4 * MANY]:  # the closest name in another folder, or of another suffix
        others = {
            p.stem: p for p in files if p.parent != path.parent or p.suffix.lower() != path.suffix.lower()
        }
        match = difflib.get_close_matches(path.stem, list(others)[:5000], n=1, cutoff=0)
        if match and len(close) < 3:
            close.append(f"{path.relative_to(root)} ~ {others[match[0]].relative_to(root)}")
    return UserError(
        f"no images and masks pair by name in {root}: {len(files)} image files "
        f"({', '.join(f'{n} {s}' for s, n in sorted(suffixes.items(), key=lambda c: (-c[1], c[0])))}) "
        f"in {held}"
        + (f"; closest names: {'; '.join(close)}" if close else "")
        + ": a mask is found as the image's name plus a suffix (<name>_mask.png beside <name>.jpg) or as the "
        f"image's name in another folder (masks/<name>.png) and must hold fewer values than its image "
        f"({YOUR_OWN_DATA})"
    )


def find(root: Path, masks: str | None = None) -> DataLayout:
    if (root / "JPEGImages").is_dir():
        raise UserError(
            f"{root} holds JPEGImages/ as a labelme or CVAT export does, but neither its class list "
            "class_names.txt (labelme) nor labelmap.txt (CVAT): copy it from the export into the folder"
        )
    files = image_files(root)
    found = mask_rules(files, root)
    if not found:
        raise nothing_pairs(root, files)
    choice = choose(found, root, masks)
    extras = numbered_extras(choice.pairs[0], files) if len(choice.rules) == 1 else {}
    why, notes = left_out(files, root, choice, {p for more in extras.values() for p in more})
    images = choice.pairs[0]
    if len(why["without a mask"]) > len(images):
        raise UserError(
            f"most images of {root} lack a mask: {len(images)} pair by {choice.rules[0].text()}, "
            f"{len(why['without a mask'])} do not, e.g. "
            f"{', '.join(str(p.relative_to(root)) for p in why['without a mask'][:MANY])}: add their masks, "
            "or choose other masks with --masks"
        )
    ids = {str(image.relative_to(root).with_suffix("")): image for image in sorted(images)}
    files_of = {
        i: tuple(pairs[image] for pairs in choice.pairs) + extras.get(choice.pairs[0][image], ())
        for i, image in ids.items()
    }
    example = next(iter(ids.values()))
    rule_line = f"masks: {choice.rules[0].text((example, images[example]))}, {len(ids)} pairs"
    numbered = sum(bool(e) for e in extras.values())
    if numbered:
        notes.append(f"{numbered} image(s) have several numbered masks: each image's masks are united")
    parts = [paired_masks.part_name(rule.choice()) for rule in choice.rules] if len(choice.rules) > 1 else []
    meaning = paired_masks.read_meaning(root, files_of, parts)
    return DataLayout(
        "paired by name", root, meaning.names, meaning.colors, meaning.values, meaning.rule, images=ids,
        masks=files_of, splits={"train": tuple(sorted(ids))}, decode=meaning.decode, fix=meaning.fix,
        hold_out=True, missing_split=no_split(f"the images of {root}", ["train", "val"]),
        notes=(rule_line, *choice.notes, *notes, *meaning.notes),
    )  # fmt: skip
