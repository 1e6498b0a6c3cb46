"""How `-A` finds the App, the way Flask finds its app: module:attr, an `app` attribute,
the only App in the module, or a create_app() factory."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest

from conveyor import App
from conveyor.discovery import load_app

MakeModule = Callable[[str, str], None]


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeModule]:
    """Write `name.py` into an importable temp dir; forget the module afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # also restores sys.path afterwards
    monkeypatch.delenv("CONVEYOR_BROKER_URL", raising=False)
    names: list[str] = []

    def make(name: str, source: str) -> None:
        path = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            if parent != Path("."):
                (tmp_path / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)

    yield make
    tops = {n.split(".")[0] for n in names}
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            sys.modules.pop(name, None)


def test_module_colon_attribute_picks_that_app(make_module: MakeModule) -> None:
    make_module("disc_attr", """
        from conveyor import App
        app = App("main", broker="memory://")
        other = App("other", broker="memory://")
    """)
    assert load_app("disc_attr:other").name == "other"
    assert load_app("disc_attr:app").name == "main"


def test_module_with_an_app_attribute(make_module: MakeModule) -> None:
    make_module("disc_app", """
        from conveyor import App
        app = App("main", broker="memory://")
        spare = App("spare", broker="memory://")
    """)
    found = load_app("disc_app")
    assert isinstance(found, App)
    assert found.name == "main"


def test_module_with_a_single_app_under_any_name(make_module: MakeModule) -> None:
    make_module("disc_single", """
        from conveyor import App
        queue = App("only", broker="memory://")
    """)
    assert load_app("disc_single").name == "only"


def test_module_with_a_create_app_factory(make_module: MakeModule) -> None:
    make_module("disc_factory", """
        from conveyor import App

        def create_app():
            return App("made", broker="memory://")
    """)
    assert load_app("disc_factory").name == "made"


def test_attribute_naming_a_factory_is_called(make_module: MakeModule) -> None:
    make_module("disc_named_factory", """
        from conveyor import App

        def build():
            return App("built", broker="memory://")
    """)
    assert load_app("disc_named_factory:build").name == "built"


def test_dotted_package_module(make_module: MakeModule) -> None:
    make_module("discpkg.tasks", """
        from conveyor import App
        app = App("pkg", broker="memory://")
    """)
    assert load_app("discpkg.tasks").name == "pkg"


def test_the_same_app_object_is_returned_as_the_module_holds(make_module: MakeModule) -> None:
    make_module("disc_same", """
        from conveyor import App
        app = App("main", broker="memory://")
    """)
    module = importlib.import_module("disc_same")
    assert load_app("disc_same") is module.app


def test_modules_in_the_working_directory_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a module in the working directory, which is not on sys.path
    (tmp_path / "disc_cwd.py").write_text(
        "from conveyor import App\napp = App('cwd', broker='memory://')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    importlib.invalidate_caches()
    try:
        # When it is named with -A / Then it is imported from there, as `python -m` would
        assert load_app("disc_cwd").name == "cwd"
    finally:
        sys.modules.pop("disc_cwd", None)


def test_missing_module_is_a_usage_error_saying_what_to_do(make_module: MakeModule) -> None:
    with pytest.raises(click.UsageError) as info:
        load_app("no_such_module_xyz")
    message = info.value.message
    assert "no_such_module_xyz" in message
    assert "directory" in message


def test_missing_package_of_a_dotted_module_is_a_usage_error(make_module: MakeModule) -> None:
    with pytest.raises(click.UsageError, match="nopkg_xyz"):
        load_app("nopkg_xyz.tasks:app")


def test_a_broken_import_inside_the_module_is_not_hidden(
        make_module: MakeModule, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a module that exists but imports a dependency that doesn't
    make_module("disc_broken", """
        import dependency_that_is_not_installed_xyz
    """)
    # When it is loaded / Then one line names the missing dependency, under the
    # module's own traceback
    with pytest.raises(click.ClickException) as info:
        load_app("disc_broken")
    assert "dependency_that_is_not_installed_xyz" in info.value.message
    assert "disc_broken.py" in capsys.readouterr().err


def test_a_module_that_raises_shows_its_own_traceback_not_clicks(
        make_module: MakeModule, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a module whose import raises in the user's own code
    make_module("disc_raises", """
        def connect():
            raise RuntimeError("no database configured")

        connect()
    """)
    # When it is loaded
    with pytest.raises(click.ClickException) as info:
        load_app("disc_raises")
    # Then the error is one line, and the traceback above it starts in the user's file
    assert info.value.message == ("importing 'disc_raises' (from -A disc_raises) failed: "
                                  "RuntimeError: no database configured (its traceback is "
                                  "above)")
    shown = capsys.readouterr().err
    assert "disc_raises.py\", line 5, in <module>" in shown
    assert "in connect" in shown
    assert "importlib" not in shown and "click" not in shown


def test_a_misspelt_module_gets_a_did_you_mean(make_module: MakeModule) -> None:
    make_module("disc_shop", """
        from conveyor import App
        app = App("main", broker="memory://")
    """)
    with pytest.raises(click.UsageError, match="did you mean -A disc_shop\\?"):
        load_app("disc_shpo")


def test_a_misspelt_module_in_a_package_gets_a_did_you_mean(make_module: MakeModule) -> None:
    make_module("disc_pkg.tasks", """
        from conveyor import App
        app = App("main", broker="memory://")
    """)
    with pytest.raises(click.UsageError, match="did you mean -A disc_pkg.tasks\\?"):
        load_app("disc_pkg.taks")


def test_a_misspelt_attribute_gets_a_did_you_mean(make_module: MakeModule) -> None:
    make_module("disc_attr_typo", """
        from conveyor import App
        app = App("main", broker="memory://")
    """)
    with pytest.raises(click.UsageError, match="did you mean -A disc_attr_typo:app\\?"):
        load_app("disc_attr_typo:ap")


@pytest.mark.parametrize(("spec", "hint"), [("shop.py", "-A shop"),
                                            ("./shop/tasks.py:app", "-A shop.tasks:app")])
def test_a_file_name_is_told_to_drop_py(spec: str, hint: str) -> None:
    with pytest.raises(click.UsageError, match="drop .py") as info:
        load_app(spec)
    assert hint in info.value.message


def test_missing_attribute_is_a_usage_error(make_module: MakeModule) -> None:
    make_module("disc_noattr", """
        from conveyor import App
        app = App("main", broker="memory://")
    """)
    with pytest.raises(click.UsageError, match="'nope'"):
        load_app("disc_noattr:nope")


def test_attribute_that_is_not_an_app_is_a_usage_error(make_module: MakeModule) -> None:
    make_module("disc_notapp", """
        settings = {"a": 1}
    """)
    with pytest.raises(click.UsageError, match="not a conveyor App"):
        load_app("disc_notapp:settings")


def test_factory_returning_something_else_is_a_usage_error(make_module: MakeModule) -> None:
    make_module("disc_badfactory", """
        def create_app():
            return "not an app"
    """)
    with pytest.raises(click.UsageError, match="not a conveyor App"):
        load_app("disc_badfactory")


def test_module_without_any_app_is_a_usage_error(make_module: MakeModule) -> None:
    make_module("disc_empty", """
        X = 1
    """)
    with pytest.raises(click.UsageError) as info:
        load_app("disc_empty")
    assert "no conveyor App" in info.value.message
    assert "disc_empty" in info.value.message


def test_module_with_several_apps_and_no_app_attribute_asks_to_name_one(
    make_module: MakeModule,
) -> None:
    make_module("disc_several", """
        from conveyor import App
        first = App("one", broker="memory://")
        second = App("two", broker="memory://")
    """)
    with pytest.raises(click.UsageError, match="several"):
        load_app("disc_several")


@pytest.mark.parametrize("spec", [None, ""])
def test_no_spec_asks_for_minus_a_or_the_environment_variable(spec: str | None) -> None:
    with pytest.raises(click.UsageError) as info:
        load_app(spec)
    assert "-A" in info.value.message
    assert "CONVEYOR_APP" in info.value.message


def test_an_app_whose_url_is_wrong_is_one_line_on_the_command_line(
        make_module: MakeModule) -> None:
    from click.testing import CliRunner

    from conveyor.cli import main

    make_module("badurl", """
        from conveyor import App
        app = App("shop", broker="redis://127.0.0.1:6379/0?namespce=x")
    """)

    result = CliRunner().invoke(main, ["status", "-A", "badurl"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: the app in 'badurl' can't be used: unknown "
                                    "option 'namespce'; did you mean 'namespace'?")
    assert len(result.output.strip().splitlines()) == 1
