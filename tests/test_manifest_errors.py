"""Every manifest error exits 2, names file:line:col and the field, and shows no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from manifest_factory import BASE, SHA40, line_of, write_manifest

from releasectl.errors import BadInput
from releasectl.manifest.loader import load_manifest, manifest_digest


def expect_error(
    cli,
    root: Path,
    text: str | bytes,
    *,
    line: int | None,
    field: str | None,
    words: list[str],
    name: str = "v1.3",
):
    path = root / "releases" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    result = cli("validate", str(path), "--format", "json", cwd=root)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    doc = result.json()
    problems = doc["problems"]
    assert problems, doc
    p = problems[0]
    assert p["file"] == f"releases/{name}.yaml"
    if line is not None:
        assert p["line"] == line, p
        assert p["col"] >= 1
    if field is not None:
        assert p["field"] == field, p
    text_all = json.dumps(p)
    for w in words:
        assert w in text_all, (w, p)
    # The human rendering carries file:line:col too.
    human = cli("validate", str(path), cwd=root)
    assert human.code == 2
    assert "Traceback" not in human.output
    if line is not None:
        assert f"releases/{name}.yaml:{line}:" in human.stderr
    return p


@pytest.mark.parametrize(
    ("revision", "words"),
    [
        ("main", ["'main' is a branch name", "40-hex"]),
        ("v2", ["'v2' is a tag name"]),
        ("abc1234", ["short SHA", "7 hex"]),
        (SHA40.upper(), ["uppercase"]),
    ],
)
def test_mutable_or_short_revisions_are_refused(cli, tmp_path, revision, words):
    text = BASE.replace(f"revision: {SHA40}", f"revision: {revision}", 1)
    p = expect_error(
        cli, tmp_path, text, line=line_of(text, f"revision: {revision}"), field="model.revision", words=words
    )
    assert p["col"] == len("  revision: ") + 1


def test_missing_revision_is_refused(cli, tmp_path):
    text = BASE.replace(f"  revision: {SHA40}\n", "", 1)
    expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, "model:"),
        field="model.revision",
        words=["missing revision", "40-hex"],
    )


@pytest.mark.parametrize(
    ("path", "words"),
    [("../outside/prompt.j2", ["escapes the repository", ".."]), ("/etc/passwd", ["absolute"])],
)
def test_paths_escaping_the_repo_are_refused(cli, tmp_path, path, words):
    text = BASE.replace("path: prompts/assistant_v2.j2", f"path: {path}")
    expect_error(
        cli, tmp_path, text, line=line_of(text, f"path: {path}"), field="input.template.path", words=words
    )


def test_symlink_out_of_the_repo_is_refused(cli, tmp_path):
    root = tmp_path / "repo"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "prompt.j2").write_text("hi")
    (root / "prompts").mkdir(parents=True)
    os.symlink(outside / "prompt.j2", root / "prompts" / "assistant_v2.j2")
    p = expect_error(
        cli,
        root,
        BASE,
        line=line_of(BASE, "path: prompts/assistant_v2.j2"),
        field="input.template.path",
        words=["outside the repository", "symlink"],
    )
    assert str(outside.resolve()) in p["found"]


def test_unknown_key_is_refused_with_a_suggestion(cli, tmp_path):
    text = BASE.replace("  temperature: 0.0", "  temprature: 0.0")
    p = expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, "temprature"),
        field="sampling.temprature",
        words=["unknown key 'temprature'"],
    )
    assert "did you mean 'temperature'" in p["hint"]


def test_duplicate_key_is_refused(cli, tmp_path):
    text = BASE.replace("  max_tokens: 64\n", "  max_tokens: 64\n  max_tokens: 128\n")
    p = expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, "max_tokens: 128"),
        field="sampling.max_tokens",
        words=["duplicate key"],
    )
    assert f"first at line {line_of(text, 'max_tokens: 64')}" in p["found"]


def test_alias_bomb_is_refused(cli, tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    p = expect_error(cli, tmp_path, bomb + BASE, line=None, field=None, words=["alias"])
    assert p["line"] >= 1


def test_wrong_type_is_refused(cli, tmp_path):
    text = BASE.replace("max_tokens: 64", "max_tokens: lots")
    p = expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, "max_tokens: lots"),
        field="sampling.max_tokens",
        words=["integer"],
    )
    assert p["found"] == "'lots'"


def test_missing_required_field_is_refused(cli, tmp_path):
    text = BASE.replace("  seed: 1234\n", "")
    expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, "sampling:"),
        field="sampling.seed",
        words=["missing required field"],
    )


def test_release_name_must_match_file_name(cli, tmp_path):
    p = expect_error(
        cli, tmp_path, BASE, line=1, field="release", words=["differs from the file name"], name="v1.4"
    )
    assert p["expected"] == "'v1.4' (the file stem)"
    assert p["found"] == "'v1.3'"


def test_non_string_key_is_refused(cli, tmp_path):
    text = BASE.replace("verifiers:\n", 'verifiers:\n  1: "1.0"\n')
    expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, '  1: "1.0"'),
        field="verifiers",
        words=["keys must be strings"],
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", ["file is empty"]),
        ("# only a comment\n\n", ["file is empty"]),
        ("- a\n- b\n", ["top level must be a mapping", "list"]),
        (b"release: v1.3\x00\x01\x02", ["binary"]),
        (b"release: v1.3\ndescription: caf\xe9\n", ["not UTF-8", "0xe9"]),
    ],
)
def test_bad_files_are_refused(cli, tmp_path, content, words):
    expect_error(cli, tmp_path, content, line=None, field=None, words=words)


def test_invalid_yaml_points_at_the_line(cli, tmp_path):
    text = BASE.replace("  seed: 1234", "  seed: [1234")
    expect_error(cli, tmp_path, text, line=None, field=None, words=["flow sequence"])


def test_missing_file_exits_2(cli, tmp_path):
    result = cli("validate", str(tmp_path / "releases" / "v9.9.yaml"))
    assert result.code == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.output


def test_valid_manifest_loads_and_digest_ignores_comments(tmp_path):
    path = write_manifest(tmp_path)
    a = load_manifest(path)
    path.write_text("# a comment\n" + BASE.replace("seed: 1234", "seed: 1234   # pinned"), encoding="utf-8")
    b = load_manifest(path)
    assert a.digest == b.digest == manifest_digest(b.manifest)
    assert a.digest.startswith("sha256:") and len(a.digest) == 7 + 64
    path.write_text(BASE.replace("seed: 1234", "seed: 99"), encoding="utf-8")
    assert load_manifest(path).digest != a.digest


def test_loader_raises_bad_input_with_all_problems(tmp_path):
    text = BASE.replace(f"revision: {SHA40}", "revision: main").replace("max_tokens: 64", "max_tokens: -1")
    path = write_manifest(tmp_path, text)
    with pytest.raises(BadInput) as err:
        load_manifest(path)
    fields = {p.field for p in err.value.problems}
    assert {"model.revision", "tokenizer.revision", "sampling.max_tokens"} <= fields


def test_schema_prints_the_json_schema(cli):
    result = cli("schema")
    assert result.code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "releasectl release manifest"
    assert schema["additionalProperties"] is False
    assert {"release", "model", "sampling", "verifiers", "runtime", "policy", "infrastructure"} <= set(
        schema["properties"]
    )
    assert "sampling" in schema["required"]


# --- strict numbers, special files and extreme values (issue 11) ---------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("gpus_allocated: 2", "gpus_allocated: true", "infrastructure.gpus_allocated", ["integer"]),
        ("gpus_allocated: 2", "gpus_allocated: yes", "infrastructure.gpus_allocated", ["integer"]),
        ("gpus_allocated: 2", 'gpus_allocated: "2"', "infrastructure.gpus_allocated", ["integer"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: false", "infrastructure.gpu_hourly_usd", ["number"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: .inf", "infrastructure.gpu_hourly_usd", ["finite"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: .nan", "infrastructure.gpu_hourly_usd", ["finite"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: -.Inf", "infrastructure.gpu_hourly_usd", ["finite"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: 1.0e+309", "infrastructure.gpu_hourly_usd", ["finite"]),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: 1e309", "infrastructure.gpu_hourly_usd", ["number"]),
        ("max_tokens: 64", "max_tokens: " + "9" * 5000, "sampling.max_tokens", ["integer too long"]),
        ("seed: 1234", "seed: 1234.0", "sampling.seed", ["integer"]),
        ("temperature: 0.0", "temperature: true", "sampling.temperature", ["number"]),
    ],
)
def test_bools_strings_and_non_finite_values_are_not_numbers(cli, tmp_path, old, new, field, words):
    assert old in BASE
    text = BASE.replace(old, new)
    expect_error(cli, tmp_path, text, line=line_of(text, new), field=field, words=words)


@pytest.mark.parametrize("depth", [201, 5000])
def test_deep_nesting_is_refused_with_its_line(cli, tmp_path, depth):
    for text in (
        BASE + "deep: " + "[" * depth + "]" * depth + "\n",
        BASE + "deep: " + "{a: " * depth + "1" + "}" * depth + "\n",
    ):
        p = expect_error(cli, tmp_path, text, line=None, field=None, words=["nesting deeper than"])
        assert p["line"] == line_of(text, "deep:")


def test_special_files_are_refused_without_hanging(cli, tmp_path):
    import threading

    releases = tmp_path / "releases"
    releases.mkdir()
    fifo = releases / "v1.3.yaml"
    os.mkfifo(fifo)
    box: dict[str, object] = {}
    t = threading.Thread(
        target=lambda: box.setdefault("r", cli("validate", str(fifo), cwd=tmp_path)), daemon=True
    )
    t.start()
    t.join(20)
    assert not t.is_alive(), "validate hung on a FIFO"
    r = box["r"]
    assert r.code == 2 and "FIFO" in r.output and "v1.3.yaml" in r.output  # type: ignore[attr-defined]
    fifo.unlink()
    fifo.symlink_to("/dev/zero")
    r = cli("validate", str(fifo), cwd=tmp_path)
    assert r.code == 2 and "device" in r.output and "v1.3.yaml" in r.output
    fifo.unlink()
    (releases / "loop.yaml").symlink_to(releases / "v1.3.yaml")
    fifo.symlink_to(releases / "loop.yaml")
    r = cli("validate", str(fifo), cwd=tmp_path)
    assert r.code == 2 and "loop" in r.output and "v1.3.yaml" in r.output
    long = releases / ("v" * 100_000 + ".yaml")
    r = cli("validate", str(long), cwd=tmp_path)
    assert r.code == 2 and "too long" in r.output and "Traceback" not in r.output


def test_an_error_on_line_100_keeps_its_location_in_text_output(cli, tmp_path):
    filler = "".join(f"# comment {i}\n" for i in range(100 - 1 - BASE.count("\n")))
    text = BASE + filler + "bogus_key: 1\n"
    assert line_of(text, "bogus_key: 1") == 100
    path = write_manifest(tmp_path, text)
    r = cli("validate", str(path), cwd=tmp_path)
    assert r.code == 2
    assert "v1.3.yaml:100:" in r.output and "💯" not in r.output


def test_markup_in_a_file_name_is_kept_in_the_problem(cli, tmp_path):
    name = "[red]x[/red]"
    path = tmp_path / "releases" / f"{name}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(BASE.replace("max_tokens: 64", 'max_tokens: "[bold]:100:[/bold]"'))
    r = cli("validate", str(path), "--format", "json", cwd=tmp_path)
    assert r.code == 2
    p = r.json()["problems"][0]
    assert p["file"] == f"releases/{name}.yaml" and p["found"] == "'[bold]:100:[/bold]'"
    r = cli("validate", str(path), cwd=tmp_path)
    assert f"releases/{name}.yaml:" in r.output and "[bold]:100:[/bold]" in r.output  # plain text


ADAPTER = "  - name: {name}\n    uri: hf://acme/lora\n    revision: " + SHA40 + "\n"


@pytest.mark.parametrize(
    "name",
    ['"--api-key=x"', '"-x"', '"a b"', '"a=b"', '""', '"a\\nb"', '"a\\"b"', "x" * 129],
)
def test_adapter_names_that_would_inject_a_server_option_are_refused(cli, tmp_path, name):
    # An adapter's name reaches `vllm serve --lora-modules NAME=PATH` as one argument.
    text = BASE.replace("adapters: []\n", "adapters:\n" + ADAPTER.format(name=name), 1)
    expect_error(
        cli,
        tmp_path,
        text,
        line=line_of(text, f"name: {name}"),
        field="adapters[0].name",
        words=["adapter name"],
    )


@pytest.mark.parametrize("name", ['"--served-model-name"', '"Smol LM"', "'-rf'"])
def test_model_names_that_are_not_one_served_name_are_refused(cli, tmp_path, name):
    text = BASE.replace("  name: SmolLM2-135M-Instruct\n", f"  name: {name}\n", 1)
    expect_error(
        cli, tmp_path, text, line=line_of(text, f"name: {name}"), field="model.name", words=["served"]
    )


def test_two_adapters_with_one_name_are_refused(cli, tmp_path):
    text = BASE.replace(
        "adapters: []\n", "adapters:\n" + ADAPTER.format(name="a") + ADAPTER.format(name="a"), 1
    )
    expect_error(cli, tmp_path, text, line=None, field="adapters", words=["two adapters are named 'a'"])


# --- decimal integers only (issue 13 red team): YAML 1.1's other spellings of numbers --------------


@pytest.mark.parametrize(
    ("old", "new", "field", "reads"),
    [
        ("max_tokens: 64", "max_tokens: 0x40", "sampling.max_tokens", "64"),
        ("max_tokens: 64", "max_tokens: 6_4", "sampling.max_tokens", "64"),
        ("max_tokens: 64", "max_tokens: 0100", "sampling.max_tokens", "64"),  # octal in YAML 1.1
        ("max_tokens: 64", "max_tokens: 0b1000000", "sampling.max_tokens", "64"),
        ("max_tokens: 64", "max_tokens: 1:04", "sampling.max_tokens", "64"),  # base 60
        ("seed: 1234", "seed: 0x4d2", "sampling.seed", "1234"),
        ("gpus_allocated: 2", "gpus_allocated: 0x2", "infrastructure.gpus_allocated", "2"),
        ("max_model_len: 2048", "max_model_len: 2_048", "runtime.max_model_len", "2048"),
        ("gpu_hourly_usd: 0.8", "gpu_hourly_usd: 0_0.8", "infrastructure.gpu_hourly_usd", None),
    ],
)
def test_numbers_not_written_in_decimal_are_refused_at_their_line(cli, tmp_path, old, new, field, reads):
    assert old in BASE
    text = BASE.replace(old, new)
    written = new.split(": ", 1)[1]
    words = [f"{written} is not a decimal", "write it as a decimal"] + (
        [f"reads it as {reads}"] if reads else []
    )
    expect_error(cli, tmp_path, text, line=line_of(text, new), field=field, words=words)


def test_decimal_integers_still_load_with_their_values(tmp_path):
    text = BASE.replace("max_tokens: 64", "max_tokens: 640").replace("seed: 1234", "seed: -0")
    path = write_manifest(tmp_path, text.replace("seed: -0", "seed: 0"))
    m = load_manifest(path).manifest
    assert (m.sampling.max_tokens, m.sampling.seed) == (640, 0)
    path.write_text(text.replace("seed: -0", "seed: +7"), encoding="utf-8")  # a sign is decimal
    assert load_manifest(path).manifest.sampling.seed == 7
