"""The console scripts, run as a user runs them (subprocesses), checked against the goldens."""

import json
import re
import subprocess
import sys

import numpy as np

BIN = __import__("pathlib").Path(sys.executable).parent


def run(*args, ok=True):
    proc = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True,
                          text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_main_job_prints_the_golden_story(shared_models):
    golden = json.loads((shared_models / "stories260K" / "golden.json").read_text())
    out = run("irtool", "generate", "--prompt", "Once upon a time", "--steps", "64").stdout
    assert golden["text"] in out
    assert "tokens: " + ",".join(map(str, golden["all_ids"])) in out


def test_generate_with_char_tokenizer_on_onnx(shared_models):
    golden = json.loads((shared_models / "nanogpt-tiny" / "golden.json").read_text())
    out = run("irtool", "generate", shared_models / "nanogpt-tiny" / "nanogpt.onnx",
              "--prompt", golden["prompt"], "--steps", "64").stdout
    assert golden["text"] in out


def test_import_then_run_dumps_golden_logits(shared_models, tmp_path):
    model = shared_models / "stories260K" / "stories260K.bin"
    run("irtool", "import", model, "-o", tmp_path / "m.mlir")
    golden = np.load(shared_models / "stories260K" / "golden_logits.npz")
    ids = ",".join(map(str, golden["input_ids"][0]))
    out = run("irtool-run", tmp_path / "m.mlir", "--tokens", ids, "--dump-logits",
              tmp_path / "l.npy", "--generate", "3").stdout
    logits = np.load(tmp_path / "l.npy")
    assert logits.dtype == np.float32 and logits.shape == golden["logits"].shape[1:]
    assert np.abs(logits - golden["logits"][0]).max() < 1e-4
    assert "tokens: " in out


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.mlir"
    bad.write_text("func.func @forward(%x: tensor<?xi32>) {\n  %y = transformer.nope %x\n}\n")
    for cmd in (["irtool-run", bad, "--tokens", "1"], ["irtool-opt", bad],
                ["irtool", "import", tmp_path / "missing.onnx", "-o", tmp_path / "o.mlir"]):
        proc = run(*cmd, ok=False)
        assert proc.returncode == 1, proc
        assert proc.stderr.startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr
    assert "transformer.nope" in run("irtool-run", bad, "--tokens", "1", ok=False).stderr


def test_compile_without_tokenizer_prints_ids(shared_models, tmp_path):
    """A model with no tokenizer still compiles from token ids; the program prints `<id>`."""
    out = run("irtool", "compile", shared_models / "phi-tiny" / "phi.onnx", "--prompt-tokens",
              "47,211,38", "--steps", "4", "-o", tmp_path / "phi").stdout
    assert "prints token ids as <id>" in out
    main_c = (tmp_path / "phi" / "main.c").read_text()
    # the table as main.c declares it: one string of every piece, an offset per token
    text = re.search(r"piece_bytes\[\d+\] =\n(.*?);\n", main_c, re.S).group(1)
    blob = bytes.fromhex("".join(re.findall(r"\\x([0-9a-f]{2})", text)))
    at = [int(v) for v in re.search(r"piece_at\[IRT_VOCAB \+ 1\] = \{(.*?)\}", main_c,
                                    re.S).group(1).replace(",", " ").split()]
    assert len(at) == 257 and blob[at[127]:at[128]] == b"<127>"
    assert blob == b"".join(f"<{i}>".encode() for i in range(256))


def test_token_lists_from_the_command_line_keep_every_id(shared_models, tmp_path):
    """`--tokens "1 403"` ran the one id 1403 (or any joined number), and an empty
    `--prompt-tokens` compiled the default prompt instead."""
    model = shared_models / "stories260K" / "stories260K.bin"
    spaced = run("irtool-run", model, "--tokens", "1 403 407", "--dump-logits",
                 tmp_path / "spaced.npy").stdout
    run("irtool-run", model, "--tokens", "1,403,407", "--dump-logits", tmp_path / "commas.npy")
    assert "positions: 3," in spaced
    assert np.array_equal(np.load(tmp_path / "spaced.npy"), np.load(tmp_path / "commas.npy"))
    proc = run("irtool", "compile", "--target", "host", "-o", tmp_path / "p", "--prompt-tokens",
               "", ok=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --prompt-tokens is empty: give at least one token id"
    assert not (tmp_path / "p").exists()


def test_generation_past_the_context_is_refused_before_any_work(shared_models):
    """`irtool generate --steps 600` stopped silently after 510 tokens, irtool-run --generate
    too, and a decode-level run with a 16-position cache failed after its work, printing
    nothing of it: each now says at once how many steps fit."""
    model = shared_models / "stories260K" / "stories260K.bin"
    cases = [
        (("irtool", "generate", model, "--prompt", "Once", "--steps", "600", "--stop", "none"),
         "2 prompt tokens + 600 steps need 601 positions but the model's context "
         "(irtool.max_seq_len) is 512: give at most 511 steps"),
        (("irtool-run", model, "--tokens", "1,2", "--generate", "600"),
         "2 prompt tokens + 600 steps need 601 positions but the model's context "
         "(irtool.max_seq_len) is 512: give at most 511 steps"),
        (("irtool", "generate", model, "--level", "decode", "--capacity", "16", "--steps", "100",
          "--stop", "none"),
         "5 prompt tokens + 100 steps need 104 positions but the KV cache holds 16: give at "
         "most 12 steps, a larger --capacity, or a --window"),
    ]
    for args, message in cases:
        proc = run(*args, ok=False)
        assert proc.returncode == 1 and proc.stderr.strip() == f"error: {message}", proc.stderr
        assert "tokens:" not in proc.stdout
    edge = run("irtool-run", model, "--tokens", "1,2", "--generate", "511").stdout
    assert len(edge.split("tokens: ")[1].split(",")) == 511  # the last from position 511
    # a prompt as long as the cache still gives one token (from its last position's logits):
    # it was refused with "no room to generate", while a 6-position cache took 2 steps
    full = run("irtool", "generate", model, "--level", "decode", "--capacity", "5", "--steps",
               "1", "--stop", "none").stdout
    assert "tokens: 1,403,407,261,378,432" in full
    assert run("irtool", "generate", model, "--level", "decode", "--capacity", "4", "--steps",
               "1", ok=False).stderr.strip() == ("error: the prompt has 5 tokens but the KV "
                                                 "cache capacity is 4 positions: shorten it to "
                                                 "at most 4 tokens")


def test_compile_prints_the_mapping_of_the_project_it_wrote(shared_models, tmp_path):
    """The mapping was read from the folder before the new project was put in place: a new
    folder printed none, and an fp32 compile over a w8a8 project printed the old mapping."""
    model = shared_models / "stories260K" / "stories260K.bin"
    common = ("--target", "siracusa", "-o", tmp_path / "p", "--capacity", "64", "--steps", "8",
              "--quiet")
    first = run("irtool", "compile", model, *common, "--quant", "w8a8").stdout
    assert "mapping of decode (1 token): W8A8 linears 35 on the NPU" in first
    second = run("irtool", "compile", model, *common).stdout
    assert "35 on the NPU" not in second
    assert "mapping of decode (1 token): W8A8 linears 0 on the NPU" in second
    assert "35 on the NPU" not in (tmp_path / "p" / "mapping.txt").read_text()


def test_compile_encodes_a_text_calibration_file_with_its_tokenizer(shared_models, tmp_path):
    """`--calibration notes.txt --tokenizer vocab.json` was refused: "if it is text, give a
    tokenizer to encode it (--tokenizer FILE...)", with that very flag given."""
    model = shared_models / "nanogpt-tiny" / "nanogpt.onnx"
    text = tmp_path / "calib.txt"
    text.write_text("Once upon a time, there was a little girl.\n\nShe liked to play.\n")
    out = run("irtool", "compile", model, "--target", "host", "-o", tmp_path / "p",
              "--capacity", "80", "--steps", "4", "--quant", "w8a8", "--calibration", text,
              "--tokenizer", shared_models / "nanogpt-tiny" / "vocab.json", "--quiet").stdout
    assert "wrote the project for host (w8a8)" in out


def test_an_empty_logits_path_is_an_error(shared_models):
    """`--dump-logits ''` ran the model and exited 0 with nothing written."""
    proc = run("irtool-run", shared_models / "stories260K" / "stories260K.bin", "--tokens", "1",
               "--dump-logits", "", ok=False)
    assert proc.returncode == 1 and "positions:" not in proc.stdout
    assert proc.stderr.strip() == ("error: the path of the logits file (--dump-logits) is "
                                   "empty (''): give a file name")


def test_a_projects_record_is_not_run_without_its_weights(tmp_path):
    """`irtool generate DIR/model.hw.mlir` said "weight store '(none: ... has no irtool.weights
    attribute)' has no weight ...": the record names no store, its weights are in the
    project's binary files."""
    run("irtool", "compile", "--target", "riscv-ulp", "-o", tmp_path / "p", "--capacity", "16",
        "--steps", "4", "--quiet")
    record = tmp_path / "p" / "model.hw.mlir"
    proc = run("irtool", "generate", record, "--steps", "2", ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: '{record}' reads weights but names no weight store")
