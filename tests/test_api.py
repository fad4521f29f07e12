"""The curated public API: ``interp.__all__`` names what users call, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import interp


def test_every_public_name_resolves_to_its_definition():
    assert set(interp.__all__) == set(interp._EXPORTS) | {"__version__"}
    for name in interp.__all__:
        value = getattr(interp, name)
        assert value is not None, name
        if name != "__version__" and hasattr(value, "__module__"):
            assert value.__module__.startswith("interp."), (name, value.__module__)
    assert interp.__version__ and interp.__version__ != "0+unknown"


def test_unknown_names_raise_attribute_error():
    try:
        interp.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("interp.no_such_thing resolved")


def test_import_interp_is_light():
    """``import interp`` (and so the CLI's start) does not pull in plotly, sklearn, dash or ray."""
    code = "import sys, interp, interp.cli; print(sorted(m for m in ('plotly', 'sklearn', 'dash', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_studies_run_from_the_installed_package():
    from interp.studies import STUDIES

    assert interp.STUDIES is STUDIES and "frequency_tuning" in STUDIES
    out = subprocess.run(
        [sys.executable, "-m", "interp", "study", "frequency_tuning", "--help"], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0 and "--quick" in out.stdout, out.stderr


def test_studies_run_from_a_built_wheel(tmp_path):
    """Built into a wheel and installed apart from the checkout, ``study NAME`` still finds its study."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(repo)], check=True)
    (wheel,) = wheels.glob("soundnet_interp-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    code = (
        "import interp.studies, interp.corpus.corpora as c; print(interp.studies.__file__); "
        "print(len(list(c.demo_dir().rglob('*.flac'))), len(list(c.long_dir().glob('*.flac'))))"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    )
    where, counts = out.stdout.split("\n")[:2]
    assert where.startswith(str(target)), where  # the wheel's copy, not the checkout's
    assert counts == "174 4"  # the built-in corpora travel with the package
    out = subprocess.run(
        [sys.executable, "-m", "interp", "study", "temporal_tuning", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0 and "--quick" in out.stdout, out.stderr
