"""Every slide of the seed, and every section of its spec excerpt, has a notebook section that
exists; docs/slide-coverage.md is the rendering of docs/slide-coverage.json.

The seed lives in ``../shared/seed/`` beside the repository (CI checks it out next to the clone).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sandbox.course import slides as course

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seed() -> Path:
    try:
        return course.seed_dir(ROOT)
    except course.CourseError as e:
        pytest.fail(str(e))   # a clear message, never a silent skip


@pytest.fixture(scope="module")
def coverage() -> dict:
    return course.load_coverage(course.coverage_path(ROOT))


def test_the_seed_has_slides_and_spec_sections(seed: Path) -> None:
    slides = course.seed_slides(seed)
    assert len(slides) >= 40 and 7 in slides and 59 in slides
    assert slides[48] == "CNI: Step 1"
    assert "Filesystem Setup" in course.spec_sections(seed)


def test_every_slide_and_spec_section_is_taught_somewhere(seed: Path, coverage: dict) -> None:
    problems = course.coverage_problems(coverage, course.seed_slides(seed),
                                        course.spec_sections(seed), ROOT)
    assert not problems, "\n".join(problems)


def test_cni_vs_cnm_slides_go_to_notebook_09(coverage: dict) -> None:
    for n in range(52, 60):
        assert any(nb == "notebooks/09-cni-vs-cnm.ipynb" for nb, _ in coverage["slides"][str(n)]["sections"])


def test_a_slide_without_a_section_fails(seed: Path, coverage: dict) -> None:
    broken = copy.deepcopy(coverage)
    broken["slides"]["44"]["sections"] = []
    broken["slides"]["47"]["sections"][0][1] = "## A heading nobody wrote"
    del broken["spec"]["Filesystem Setup"]
    problems = course.coverage_problems(broken, course.seed_slides(seed), course.spec_sections(seed), ROOT)
    assert any(p.startswith("slide 44 ") and "no notebook section" in p for p in problems)
    assert any(p.startswith("slide 47:") and "A heading nobody wrote" in p for p in problems)
    assert any("'Filesystem Setup' has no notebook section" in p for p in problems)
    # and a slide the table does not know at all
    slides = dict(course.seed_slides(seed))
    slides[99] = "a new slide"
    assert "slide 99 ('a new slide') has no notebook section" in course.coverage_problems(
        coverage, slides, course.spec_sections(seed), ROOT)


def test_missing_seed_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(course.CourseError, match="../shared/seed"):
        course.seed_dir(tmp_path / "repo")


def test_markdown_table_is_up_to_date(seed: Path, coverage: dict) -> None:
    md = (ROOT / "docs" / "slide-coverage.md").read_text()
    assert md == course.coverage_markdown(coverage, course.seed_slides(seed)), (
        "docs/slide-coverage.md is stale: regenerate it with "
        "sandbox.course.slides.coverage_markdown(load_coverage())")


# The words each slide itself uses ("a|b" accepts either, case-insensitive). Every section the
# coverage table maps a slide to must mention all of its slide's terms: a heading that names the
# slide, or its number, is not teaching it. Extend this table when you map a slide.
SLIDE_TERMS: dict[int, list[str]] = {
    # the story, the images and the replicas (slides 7-39)
    7: ["image format"],
    9: ["software engineer"],
    12: ["/bin/java", "app.jar", "libc"],
    13: ["/bin/python", "/opt/app.py", "libc"],
    14: ["image ID", "sha512"],
    15: ["Alice", "sign"],
    16: ["ops engineer"],
    18: ["example.com/app", "×3|three"],
    19: ["replica", "address"],
    20: ["replica", "???"],
    21: ["OCI", "standard"],
    22: ["image format", "runtime", "log", "init system", "build system"],
    23: ["image format"],
    24: ["2014"],
    25: ["2014", "content-addressable", "discovery", "sign"],
    29: ["stage0", "stage1", "stage2", "composable", "open standard"],
    30: ["shell scripts", "acbuild", "deb2aci", "goaci", "docker2aci"],
    31: ["April 2015"],
    32: ["v2.2", "content-addressable", "optional", "delegat"],
    39: ["runtime", "image", "signing", "discovery", "naming", "distribution", "build system"],
    # networking (slides 40-59)
    40: ["network namespace"],
    41: ["rkt", "appc/cni"],
    42: ["IP per pod", "cluster", "route"],
    43: ["bridge", "macvlan", "ipvlan", "Open vSwitch|Calico|flannel"],
    44: ["host-local", "DHCP", "SQL"],
    47: ["10-mynet.conf", "host-local"],
    48: ["namespace", "handle", "bind"],
    51: ["CoreOS", "Kubernetes", "Weaveworks"],
    52: ["libnetwork", "CNM"],
    53: ["network", "endpoint", "sandbox"],
    54: ["cluster", "local", "scope"],
    55: ["bridge", "overlay", "remote"],
    56: ["remote", "API", "driver"],
    57: ["Docker", "Tencent"],
    58: ["CNI", "CNM"],
    59: ["Kubernetes", "Linux network stack|full Linux network", "API"],
}


def test_each_mapped_section_mentions_its_slides_terms(coverage: dict) -> None:
    problems = course.term_problems(coverage, SLIDE_TERMS, ROOT)
    assert not problems, "\n".join(problems)


def test_every_networking_slide_has_its_terms(seed: Path) -> None:
    """Slides 18-20 and 40-59 (the networking rows): each seed slide there has a term list."""
    mine = [n for n in course.seed_slides(seed) if 18 <= n <= 20 or 40 <= n <= 59]
    assert mine and not [n for n in mine if n not in SLIDE_TERMS]


def test_a_section_that_only_names_the_slide_fails(tmp_path: Path) -> None:
    nb = {"cells": [
        {"cell_type": "markdown", "source": "# T\n\n## Slide 43\nSee slide 43.", "metadata": {}},
        {"cell_type": "code", "source": "print('bridge')", "metadata": {}, "outputs": [],
         "execution_count": None},
        {"cell_type": "markdown", "source": "## Next\nmacvlan and ipvlan", "metadata": {}},
        {"cell_type": "markdown", "source": "## Taught\nmacvlan, ipvlan", "metadata": {}},
        {"cell_type": "code", "source": "bridge()", "metadata": {}, "outputs": [],
         "execution_count": None}]}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    terms = {43: ["macvlan", "ipvlan|IPVLAN", "bridge"]}
    weak = {"slides": {"43": {"sections": [["nb.ipynb", "## Slide 43"]]}}}
    problems = course.term_problems(weak, terms, tmp_path)
    # the code cell's "bridge" counts, the next section's "macvlan" does not
    assert problems == ["slide 43: nb.ipynb section '## Slide 43' never mentions 'macvlan', "
                        "'ipvlan|IPVLAN'"]
    good = {"slides": {"43": {"sections": [["nb.ipynb", "## Taught"]]}}}
    assert course.term_problems(good, terms, tmp_path) == []
