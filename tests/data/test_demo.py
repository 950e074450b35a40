import pytest

from taae.data.demo import prompt_name, select_prompts, split_names

ROOT = "/usr/share/asterisk/sounds/en/"


def test_prompt_name_drops_voice_folder_and_extension():
    assert prompt_name(ROOT + "digits/1.g722") == "digits/1"
    assert prompt_name("/usr/share/asterisk/sounds/en_US_f_Allison/vm-goodbye.g722") == "vm-goodbye"


def test_select_prompts_drops_nonspeech_and_short_files():
    entries = [
        (ROOT + "vm-goodbye.g722", 12000),  # 1.5 s
        (ROOT + "digits/1.g722", 8000),  # exactly 1.0 s: kept
        (ROOT + "digits/2.g722", 7999),  # just under 1 s
        (ROOT + "beep.g722", 40000),
        (ROOT + "tt-monkeys.g722", 80000),
        (ROOT + "silence/5.g722", 40000),
        (ROOT + "beeperr.g722", 40000),
        (ROOT + "beep-extended.g722", 16000),  # only exact non-speech names are dropped
    ]
    kept = select_prompts(entries, min_seconds=1.0)
    assert [p.name for p in kept] == ["beep-extended", "digits__1", "vm-goodbye"]
    assert kept[2].seconds == pytest.approx(1.5) and kept[2].source == ROOT + "vm-goodbye.g722"
    assert [p.name for p in select_prompts(entries, min_seconds=2.5)] == []
    with pytest.raises(ValueError, match="min_seconds"):
        select_prompts(entries, min_seconds=-1)


def test_split_is_deterministic_disjoint_and_complete():
    names = [f"prompt-{i:03d}" for i in range(400)]
    split = split_names(names)
    assert split == split_names(list(reversed(names)))
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(names) and set().union(*parts) == set(names)
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert 0.8 < len(split["train"]) / len(names) < 0.97 and split["val"] and split["test"]
    # a name's split depends on the name alone: adding files moves nobody
    grown = split_names(names + [f"new-{i}" for i in range(50)])
    for part in ("train", "val", "test"):
        assert set(split[part]) <= set(grown[part])


def test_split_never_leaves_val_or_test_empty():
    for n in (3, 5, 10):
        split = split_names([f"x{i}" for i in range(n)])
        assert split["val"] and split["test"] and split["train"]
        assert sorted(sum(split.values(), [])) == sorted(f"x{i}" for i in range(n))
    with pytest.raises(ValueError, match="at least 3"):
        split_names(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        split_names(["a", "a", "b"])
