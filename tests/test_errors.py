"""fec.utils.errors: run_cli's contract, in process."""
import pytest

from fec.config.setup import _unknown_key
from fec.utils.errors import ConfigError, ConfigKeyError, UserError, nearest, run_cli


def test_bugs_keep_their_traceback():
    def buggy():
        return 1 / 0

    with pytest.raises(ZeroDivisionError):
        run_cli(buggy)


def test_user_error_exits_2_with_one_line(capsys):
    def wrong():
        raise ConfigError("SOLVER.MAX_ITER must be positive\nset it")

    with pytest.raises(SystemExit) as exc:
        run_cli(wrong)
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: SOLVER.MAX_ITER must be positive set it\n"
    assert isinstance(ConfigError("x"), ValueError) and isinstance(ConfigError("x"), UserError)


def test_nearest_keys_and_key_error_text():
    assert nearest("SOLVER.MAX_ITR", ["SOLVER.MAX_ITER", "MODEL.DEVICE", "SOLVER.BASE_LR"])[0] == "SOLVER.MAX_ITER"
    err = _unknown_key("MODEL.HEDA.NAME", "in x.yaml")
    assert isinstance(err, ConfigKeyError) and isinstance(err, KeyError)
    # str() of a KeyError would quote the message
    assert str(err).startswith("unknown config key MODEL.HEDA.NAME in x.yaml; did you mean MODEL.HEAD.NAME")


def test_launcher_hides_torchrun_reports_of_a_user_error_only(capsys):
    import logging

    from fec.engine.launch import _HideUserErrorExits

    def record(message):
        return logging.LogRecord("torch", logging.WARNING, __file__, 0, message, (), None)

    quiet = _HideUserErrorExits()
    # torchrun stops the other workers first, then says which one failed and how
    assert not quiet.filter(record("Sending process 11 closing signal SIGTERM"))
    assert not quiet.filter(record("failed (exitcode: 2) local_rank: 0 (pid: 10) of binary: python"))
    quiet.release()
    assert capsys.readouterr().err == ""
    assert not quiet.filter(record("Sending process 11 closing signal SIGTERM"))
    assert quiet.filter(record("failed (exitcode: 1) local_rank: 0 (pid: 10) of binary: python"))
    quiet.release()
    assert "Sending process 11 closing signal SIGTERM" in capsys.readouterr().err
