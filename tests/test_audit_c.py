"""A firmware engineer's audit of the generated C projects: each test reproduces one defect
found by using a project as its README says, and checks the fix against an independent
reference (the golden tokens of llama2.c, the Python sampler's own refusals).

* The library's irt_feed() took any token id: an id past the vocabulary indexed past the
  embedding table (a segmentation fault under ASan), a negative one read whatever lay before
  it. It now returns IRT_ERR_TOKEN before decoding anything.
* irt_generator_init() took any sampling options: a temperature of 1e-40 (whose float32
  reciprocal is inf) made every token alike and always drew the last index, where the
  interpreter refuses the option. Both irt_generator_init() and irt_generate() now return
  IRT_ERR_OPTIONS for what irtool/sampling.py refuses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from irtool.errors import IrtoolError
from irtool.sampling import SamplingOptions
from tests.requirements import need
from tests.test_library import GOLDEN, irtool, make

SAN = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@pytest.fixture(scope="module")
def san_library(tmp_path_factory) -> Path:
    """stories260K for the host target, its library built with ASan/UBSan."""
    need("cc")
    project = tmp_path_factory.mktemp("audit") / "lib"
    irtool("compile", "--target", "host", "-o", project, "--capacity", 96, "--steps", 8)
    make(project, "lib-host", "SAN=1")
    return project


def run_c(project: Path, name: str, source: str) -> str:
    """Builds `source` against the sanitized library and returns what it prints."""
    (project / f"{name}.c").write_text(source)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", *SAN, "-Iinclude", "-o",
                    name, f"{name}.c", "lib/host/libirtmodel.a", "-lm"], cwd=project,
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([str(project / name)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


FEED_LOOP = r"""
#include <stdio.h>
#include "model.h"
static int print(int32_t token, void *user) { (void)user; printf(" %ld", (long)token); return 0; }
int main(void)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    static const int32_t past_vocab[] = {1, 403, IRT_VOCAB}, negative[] = {1, -1};
    static irt_generator_t g;
    if (irt_generator_init(&g, NULL, NULL, 0) != IRT_OK) return 1;
    printf("%d %d", irt_feed(&g, past_vocab, 3), irt_feed(&g, negative, 2));
    printf(" %ld", (long)g.pos);
    if (irt_feed(&g, prompt, 5) != IRT_OK) return 1;
    return irt_generate(&g, 64, print, NULL) != 64;
}
"""


def test_feed_refuses_a_token_outside_the_vocabulary(san_library):
    out = run_c(san_library, "feed", FEED_LOOP).split()
    assert out[:3] == ["-4", "-4", "0"]  # IRT_ERR_TOKEN twice, nothing decoded
    assert [int(t) for t in out[3:]] == GOLDEN["new_ids"]


OPTIONS_LOOP = r"""
#include <stdio.h>
#include "model.h"
int main(void)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    static const irt_sampling_t options[] = {
        {1e-40f, 0, 1.0f, 3u}, {2e30f, 0, 1.0f, 3u}, {0.8f, -1, 1.0f, 3u},
        {0.8f, 0, 0.0f, 3u}, {0.8f, 0, -0.5f, 3u}, {1e-30f, 0, 1.0f, 3u}, {0.8f, 40, 0.9f, 3u},
        {0.0f, 0, 1.0f, 0u}};
    static irt_generator_t g;
    for (unsigned i = 0; i < sizeof options / sizeof options[0]; i++) {
        int init = irt_generator_init(&g, &options[i], NULL, 0);
        irt_feed(&g, prompt, 5);
        printf("%d %ld\n", init, (long)irt_generate(&g, 3, NULL, NULL));
    }
    return 0;
}
"""


def test_sampling_options_out_of_range_are_refused(san_library):
    lines = run_c(san_library, "options", OPTIONS_LOOP).splitlines()
    python = []  # what the interpreter's sampler accepts, option for option
    for t, k, p in [(1e-40, 0, 1.0), (2e30, 0, 1.0), (0.8, -1, 1.0), (0.8, 0, 0.0),
                    (0.8, 0, -0.5), (1e-30, 0, 1.0), (0.8, 40, 0.9), (0.0, 0, 1.0)]:
        try:
            SamplingOptions(t, top_k=k, top_p=p, seed=3)
            python.append("0 3")
        except IrtoolError:
            python.append("-5 -5")  # IRT_ERR_OPTIONS from init and from generate
    assert lines == python
    assert python.count("0 3") == 3
