"""The compiled build says what it is doing where the user sees it.

pip runs ``setup.py`` with stdout and stderr captured (shown only with ``-v`` or on failure), but
the build runs in the user's terminal session, so ``setup.py`` writes its steps to ``/dev/tty``.
These tests run the build steps in a child process whose controlling terminal is a fresh pty and
whose stdout/stderr are pipes, as under pip, and read what reached the terminal.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_on_a_terminal(code: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Run ``code`` with a pty as its controlling terminal and stdout/stderr piped:
    (what reached the terminal, what went to the pipes)."""
    master, slave = os.openpty()
    name = os.ttyname(slave)

    def take_the_terminal() -> None:  # runs in the child after setsid (start_new_session)
        os.close(os.open(name, os.O_RDWR))

    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                              start_new_session=True, preexec_fn=take_the_terminal,
                              env={**os.environ, **(env or {})})
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    return b"".join(chunks).decode(), proc.stdout + proc.stderr


LOAD_SETUP = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("perpbox_setup", {str(ROOT / "setup.py")!r})
setup_py = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_py)  # not __main__: setup() does not run
"""


def test_build_ext_announces_itself_on_the_terminal(tmp_path):
    """A real (one-file) C extension built with setup.py's build_ext: the start and the end of the
    compile reach the terminal, none of it the captured pipes."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    (tmp_path / "tiny.c").write_text(textwrap.dedent("""
        #include <Python.h>
        static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, "tiny", NULL, -1, NULL};
        PyMODINIT_FUNC PyInit_tiny(void) { return PyModule_Create(&m); }
    """))
    code = LOAD_SETUP + textwrap.dedent("""
        from setuptools import Extension, setup
        sys.argv = ["setup.py", "-q", "build_ext", "--inplace"]
        setup(name="tiny", ext_modules=[Extension("tiny", ["tiny.c"])],
              cmdclass={"build_ext": setup_py.AnnouncedBuildExt})
    """)
    tty, pipes = _run_on_a_terminal(code, tmp_path)
    lines = [ln.strip("\r\x1b[K") for ln in tty.splitlines() if "perpbox build:" in ln]
    assert len(lines) == 2, tty
    assert lines[0].startswith("perpbox build: compiling the generated C (1 extensions) with the C compiler")
    assert lines[1].startswith("perpbox build: compiled engine built in ") and lines[1].endswith(" s")
    assert "perpbox build" not in pipes
    assert list(tmp_path.glob("tiny*.so"))


def test_mypyc_step_is_announced_and_metadata_steps_skip_it(tmp_path):
    """``extensions()`` as pip's hooks call it: egg_info/dist_info (metadata) compile nothing and say
    nothing; the build says it is running mypyc, and PERPBOX_PURE=1 says it compiles nothing."""
    code = LOAD_SETUP + textwrap.dedent("""
        assert setup_py.extensions(["setup.py", "egg_info"]) == []
        assert setup_py.extensions(["setup.py", "dist_info", "--output-dir", "/tmp/x"]) == []
        assert setup_py.extensions(["setup.py", "editable_wheel", "--dist-dir", "/tmp/x"]) == []
    """)
    tty, pipes = _run_on_a_terminal(code, ROOT, env={"PERPBOX_PURE": "1"})
    lines = [ln.strip("\r\x1b[K\n") for ln in tty.splitlines() if "perpbox build:" in ln]
    assert lines == ["perpbox build: PERPBOX_PURE=1: installing the pure-Python engine (nothing to compile)"]
    assert "perpbox build" not in pipes


def test_without_a_terminal_the_steps_go_to_stderr(tmp_path):
    """CI and pipes have no /dev/tty: the lines go to stderr (pip shows them with -v)."""
    code = LOAD_SETUP + f"setup_py.tell('hello', tty={str(tmp_path / 'no' / 'tty')!r})\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "perpbox build: hello\n" and proc.stdout == ""
