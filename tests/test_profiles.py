"""Profiles: the launcher's config.json unchanged, YAML, look-up order, and clear errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from runner.errors import ConfigError
from runner.spec.profiles import find_profiles, load_profile, load_profiles_file

# The seed launcher's README example, trailing comma and all.
SEED_CONFIG_JSON = """
{
  "local-gpu": {
    "device": "gpu",
    "host": "local",
    "env": "conda activate deep",
    "resources": ""
  },
  "local-cpu": {
    "device": "cpu",
    "host": "local",
    "env": "conda activate deep",
    "resources": ""
  },
  "remote-gpu": {
    "env": "conda activate deep",
    "device": "gpu",
    "host": "sersver-name",
    "resources": {
      "time": "2-00:00:00",
      "account": "lfrati",
      "partition": "big-gpu",
      "cpus-per-task": 1,
      "gres": "gpu:v100:1",
      "mem": "8000"
    }
  },

}
"""


def test_seed_config_json_loads_unchanged(workdir):
    (workdir / "config.json").write_text(SEED_CONFIG_JSON)
    profiles = load_profiles_file("config.json")
    assert sorted(profiles) == ["local-cpu", "local-gpu", "remote-gpu"]
    remote = profiles["remote-gpu"]
    assert (remote.host, remote.device, remote.env) == ("sersver-name", "gpu",
                                                        ("conda activate deep",))
    assert remote.resource_map == {"time": "2-00:00:00", "account": "lfrati",
                                   "partition": "big-gpu", "cpus-per-task": "1",
                                   "gres": "gpu:v100:1", "mem": "8000"}
    assert not remote.is_local
    local = profiles["local-gpu"]
    assert local.is_local and local.resources == () and local.device == "gpu"


def test_yaml_profiles_file_and_list_env(workdir):
    (workdir / "profiles.yaml").write_text(textwrap.dedent("""
        profiles:
          big:
            host: mycluster
            device: gpu
            env: [module load cuda, source ~/venv/bin/activate]
            resources: {time: '1:00:00', exclusive: true, requeue: false}
            python: /opt/venv/bin/python
    """))
    profile = load_profile("big")
    assert profile.env == ("module load cuda", "source ~/venv/bin/activate")
    assert profile.resource_map == {"time": "1:00:00", "exclusive": True}
    assert profile.python == "/opt/venv/bin/python"
    assert profile.source.endswith("profiles.yaml")


def test_look_up_order(workdir, monkeypatch):
    """--profiles FILE, then the YAML's own profiles:, then ./config.json, ./profiles.yaml,
    then the user's config directory; the first that defines the name wins."""
    home = workdir / "xdg"
    (home / "runner").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))

    def profile(host):
        return {"host": host}

    (home / "runner" / "config.json").write_text(json.dumps({"a": profile("user"),
                                                             "only-user": profile("user")}))
    (workdir / "profiles.yaml").write_text(json.dumps({"profiles": {"a": profile("yaml"),
                                                                    "b": profile("yaml")}}))
    (workdir / "config.json").write_text(json.dumps({"a": profile("json"), "c": profile("json")}))
    (workdir / "mine.json").write_text(json.dumps({"a": profile("explicit")}))
    embedded = {"a": profile("embedded"), "d": profile("embedded")}

    found = find_profiles("mine.json", embedded, "params.yaml, document 0")
    assert found.get("a").host == "explicit"
    assert found.get("d").host == "embedded"
    assert found.get("c").host == "json"
    assert found.get("b").host == "yaml"
    assert found.get("only-user").host == "user"
    assert find_profiles(None, embedded, "params.yaml").get("a").host == "embedded"
    assert find_profiles().get("a").host == "json"


def test_a_later_broken_file_does_not_matter_when_an_earlier_one_has_the_name(workdir,
                                                                              monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workdir / "xdg"))
    (workdir / "config.json").write_text(json.dumps({"a": {"host": "local"}}))
    (workdir / "profiles.yaml").write_text("profiles: [broken\n")
    assert load_profile("a").is_local


def test_unknown_profile_lists_known_ones(workdir, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workdir / "xdg"))
    (workdir / "config.json").write_text(SEED_CONFIG_JSON)
    with pytest.raises(ConfigError) as e:
        load_profile("remote-gpus")
    message = str(e.value)
    assert "unknown profile (did you mean 'remote-gpu'?)" in message
    assert "'local-gpu', 'local-cpu', 'remote-gpu'" in message
    assert "config.json" in message


def test_no_profiles_anywhere(workdir, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workdir / "xdg"))
    with pytest.raises(ConfigError, match="no profiles defined"):
        load_profile("x")


@pytest.mark.parametrize("profile, fragments", [
    ({"device": "gpu"}, ["key 'host'", "'local' or a cluster name"]),
    ({"host": "c", "device": "tpu"}, ["key 'device'", "'gpu', 'cpu'"]),
    ({"host": "c", "resurces": {}}, ["unknown key 'resurces'", "did you mean 'resources'?"]),
    ({"host": "c", "resources": {"c": 4}}, ["resources.c", "long sbatch option"]),
    ({"host": "c", "resources": {"mem": None}}, ["resources.mem", "a string, a number or true"]),
    ({"host": "c", "resources": ["time"]}, ["key 'resources'", "mapping"]),
    ({"host": "c", "env": [1]}, ["key 'env'", "a string or a list of strings"]),
    ({"host": "c", "python": ""}, ["key 'python'"]),
])
def test_bad_profiles_say_where_and_what(workdir, profile, fragments):
    (workdir / "p.json").write_text(json.dumps({"mine": profile}))
    with pytest.raises(ConfigError) as e:
        load_profiles_file("p.json")
    message = str(e.value)
    assert message.startswith("p.json, profile 'mine': "), message
    for fragment in fragments:
        assert fragment in message, message


def test_invalid_json_names_the_file(workdir):
    (workdir / "config.json").write_text('{"a": {"host": "local"')
    with pytest.raises(ConfigError, match=r"^config.json: not valid JSON"):
        load_profiles_file("config.json")


def test_profiles_from_a_runner_yaml_document_0(workdir):
    (workdir / "params.yaml").write_text(textwrap.dedent("""
        template:
          train: echo {lr}
        profiles:
          cluster: {host: ci, device: gpu, resources: {mem: 100}}
        ---
        lr: [1]
    """))
    assert load_profiles_file("params.yaml")["cluster"].resource_map == {"mem": "100"}


def test_a_profile_names_its_engine(make_config, cli, workdir):
    make_config("""
        template:
          t: echo ran >> ran
        profiles:
          here-anyway: {host: mycluster, engine: local}
          bogus: {host: mycluster, engine: teleport}
          plain-local: {host: local}
        ---
        i: [1]
    """)
    result = cli("--profile", "here-anyway")
    assert result.code == 0, result
    assert "slots:" in result.out and (workdir / "ran").read_text() == "ran\n"
    result = cli("--profile", "plain-local", "-f")
    assert result.code == 0 and (workdir / "ran").read_text() == "ran\nran\n"
    bad = cli("--profile", "bogus")
    assert bad.code == 2 and len(bad.err.splitlines()) == 1
    assert "profile 'bogus': engine 'teleport' is not one of 'local', 'slurm'" in bad.err
    wait = cli("--profile", "plain-local", "--wait")
    assert wait.code == 2 and "profile 'plain-local' runs here" in wait.err
