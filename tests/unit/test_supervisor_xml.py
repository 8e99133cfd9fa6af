"""supervisor.xml (daemon/supervisor_xml.py): parse, normalize, and never overwrite a file
that is not XML."""

from __future__ import annotations

from pathlib import Path

from systemg.daemon.supervisor_xml import SupervisorConfig, load, parse, render


def test_defaults_render_nested_with_two_space_indent() -> None:
    text = render(SupervisorConfig())
    assert text.splitlines() == [
        "<supervisor>",
        "  <logs>",
        "    <max_bytes>10485760</max_bytes>",
        "    <max_files>5</max_files>",
        "  </logs>",
        "  <timeouts>",
        "    <pre_start_secs>300</pre_start_secs>",
        "    <startup_stability_ms>250</startup_stability_ms>",
        "  </timeouts>",
        "</supervisor>",
    ]
    assert parse(text) == (SupervisorConfig(), [])


def test_compact_file_keeps_its_values_and_gains_the_defaults() -> None:
    config, problems = parse(
        "<supervisor><logs><max_bytes>4096</max_bytes><max_files>3</max_files></logs>"
        "<extra>ignored</extra></supervisor>"
    )
    assert problems == []
    assert config == SupervisorConfig(log_max_bytes=4096, log_max_files=3)
    assert "<pre_start_secs>300</pre_start_secs>" in render(config)
    assert "extra" not in render(config)


def test_bad_values_fall_back_to_the_default_and_say_so() -> None:
    config, problems = parse(
        "<supervisor><logs><max_bytes>10MB</max_bytes></logs>"
        "<timeouts><pre_start_secs>0</pre_start_secs></timeouts></supervisor>"
    )
    assert config == SupervisorConfig()
    assert [p.split(":")[0] for p in problems] == ["logs.max_bytes", "timeouts.pre_start_secs"]


def test_load_writes_defaults_normalizes_and_spares_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.xml"
    assert load(path) == (SupervisorConfig(), [])
    assert path.read_text() == render(SupervisorConfig())
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("<supervisor><logs><max_files>2</max_files></logs></supervisor>")
    assert load(path)[0].log_max_files == 2
    assert path.read_text() == render(SupervisorConfig(log_max_files=2))
    path.write_text("<supervisor><logs>")  # mid-edit
    config, problems = load(path)
    assert config == SupervisorConfig()
    assert problems[0].startswith("not XML")
    assert path.read_text() == "<supervisor><logs>"
