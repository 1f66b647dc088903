"""How a client finds its settings: argument, then environment, then default."""

from __future__ import annotations

import httpx
import pytest

from runtools import (
    AccessTokenCredential,
    ApiKeyCredential,
    AsyncRunTools,
    MissingCredentialsError,
    RunTools,
    RunToolsError,
)

KEY = "rt_test_0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(params=[RunTools, AsyncRunTools])
def client_class(request: pytest.FixtureRequest) -> type[RunTools] | type[AsyncRunTools]:
    cls: type[RunTools] | type[AsyncRunTools] = request.param
    return cls


def test_api_key_argument_is_used(client_class: type[RunTools]) -> None:
    assert client_class(api_key=KEY).credential == ApiKeyCredential(KEY)


def test_api_key_comes_from_the_environment(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTOOLS_API_KEY", KEY)
    assert client_class().credential == ApiKeyCredential(KEY)


def test_argument_beats_environment(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTOOLS_API_KEY", "rt_test_from_env")
    assert client_class(api_key=KEY).credential == ApiKeyCredential(KEY)
    assert client_class(access_token="tok").credential == AccessTokenCredential("tok")


def test_settings_are_read_at_construction_not_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTOOLS_API_KEY", KEY)
    monkeypatch.setenv("RUNTOOLS_API_URL", "https://first.example")
    rt = RunTools()
    monkeypatch.setenv("RUNTOOLS_API_KEY", "rt_test_changed")
    monkeypatch.setenv("RUNTOOLS_API_URL", "https://second.example")
    assert rt.credential == ApiKeyCredential(KEY)
    assert rt.base_url == "https://first.example"
    assert RunTools().base_url == "https://second.example"


def test_no_credentials_names_every_way_to_authenticate(client_class: type[RunTools]) -> None:
    with pytest.raises(MissingCredentialsError) as caught:
        client_class()
    message = str(caught.value)
    assert "api_key=" in message
    assert "RUNTOOLS_API_KEY" in message
    assert "access_token=" in message
    assert "runtools login" in message
    assert isinstance(caught.value, RunToolsError)


def test_an_empty_environment_variable_counts_as_unset(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTOOLS_API_KEY", "")
    with pytest.raises(MissingCredentialsError):
        client_class()


def test_key_and_token_together_are_refused(client_class: type[RunTools]) -> None:
    with pytest.raises(ValueError, match="not both"):
        client_class(api_key=KEY, access_token="tok")


@pytest.mark.parametrize("bad", ["rt_test_abc\n", "rt_test_a b", "rt_test_é"])
def test_a_key_that_cannot_travel_in_a_header_is_refused_without_echoing_it(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    with pytest.raises(ValueError, match="api_key=") as caught:
        client_class(api_key=bad)
    assert bad not in str(caught.value)
    monkeypatch.setenv("RUNTOOLS_API_KEY", bad)
    with pytest.raises(ValueError, match="RUNTOOLS_API_KEY"):
        client_class()


def test_base_url_defaults_to_the_local_server(client_class: type[RunTools]) -> None:
    rt = client_class(api_key=KEY)
    assert rt.base_url == "http://127.0.0.1:8700"
    assert rt.auth_url == rt.base_url


def test_base_url_from_environment_and_argument(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTOOLS_API_URL", "https://api.example.com/")
    assert client_class(api_key=KEY).base_url == "https://api.example.com"
    assert client_class(api_key=KEY, base_url="http://h:1").base_url == "http://h:1"


def test_auth_url_follows_base_url_unless_set(
    client_class: type[RunTools], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client_class(api_key=KEY, base_url="http://h:1").auth_url == "http://h:1"
    monkeypatch.setenv("RUNTOOLS_AUTH_URL", "https://auth.example.com")
    assert client_class(api_key=KEY).auth_url == "https://auth.example.com"
    assert client_class(api_key=KEY, auth_url="http://a:2").auth_url == "http://a:2"


def test_a_base_url_ending_in_v1_is_not_doubled(client_class: type[RunTools]) -> None:
    assert client_class(api_key=KEY, base_url="https://h/api/v1/").base_url == "https://h/api"


@pytest.mark.parametrize("url", ["not a url", "ftp://h", "http://"])
def test_a_malformed_base_url_is_refused_at_construction(
    client_class: type[RunTools], url: str
) -> None:
    with pytest.raises(ValueError, match="base_url"):
        client_class(api_key=KEY, base_url=url)


def test_timeout_and_retry_defaults(client_class: type[RunTools]) -> None:
    rt = client_class(api_key=KEY)
    assert rt.timeout == httpx.Timeout(60.0)
    assert rt.max_retries == 2
    assert client_class(api_key=KEY, timeout=5).timeout == httpx.Timeout(5.0)
    assert client_class(api_key=KEY, max_retries=0).max_retries == 0


def test_negative_max_retries_is_refused(client_class: type[RunTools]) -> None:
    with pytest.raises(ValueError, match="max_retries must be 0 or more"):
        client_class(api_key=KEY, max_retries=-1)


def test_secrets_stay_out_of_reprs(client_class: type[RunTools]) -> None:
    assert KEY not in repr(client_class(api_key=KEY))
    assert "rt_test_012" in repr(client_class(api_key=KEY))
    token = "a-very-secret-session-token"
    assert token not in repr(client_class(access_token=token))


def test_the_clients_share_their_resources_and_methods() -> None:
    public = {name for name in dir(RunTools) if not name.startswith("_")}
    assert public == {name for name in dir(AsyncRunTools) if not name.startswith("_")}
    sync_keys = RunTools(api_key=KEY).api_keys
    async_keys = AsyncRunTools(api_key=KEY).api_keys
    assert {n for n in dir(sync_keys) if not n.startswith("_")} == {
        n for n in dir(async_keys) if not n.startswith("_")
    }
