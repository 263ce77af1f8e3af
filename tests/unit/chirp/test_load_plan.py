"""`chirp load`'s plan: the request mix, pacing to a total rate, users per worker."""

from collections import Counter

import pytest

from chirp.load import plan


def test_the_mix_follows_its_weights():
    mix = plan.Mix({"timeline": 40, "public": 30, "post": 25, "follow": 5})
    picks = Counter(mix.pick(i / 1000) for i in range(1000))
    assert picks == {"timeline": 400, "public": 300, "post": 250, "follow": 50}


def test_a_mix_without_an_action_never_picks_it():
    mix = plan.Mix(plan.parse_mix("post=1"))
    assert {mix.pick(i / 10) for i in range(10)} == {"post"}
    assert mix.pick(0.999999) == "post"


@pytest.mark.parametrize("text,message", [
    ("post", "ACTION=WEIGHT"), ("delete=3", "one of"), ("post=x", "whole number"),
    ("post=-1", "negative"), ("post=0", "at least one"), ("", "at least one"),
])
def test_bad_mixes_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        plan.parse_mix(text)


def test_parse_mix_reads_every_action():
    assert plan.parse_mix("timeline=1, public=2,post=3,follow=4") == {
        "timeline": 1, "public": 2, "post": 3, "follow": 4}


def test_the_pacer_spaces_slots_at_the_rate_and_never_bursts_to_catch_up():
    pacer = plan.Pacer(10, start=100.0)
    assert [pacer.slot(100.0) for _ in range(3)] == pytest.approx([100.0, 100.1, 100.2])
    # far behind (the app stalled for 5 s): resume from now, not 50 slots at once
    assert pacer.slot(105.0) == 105.0
    assert pacer.slot(105.0) == pytest.approx(105.1)
    with pytest.raises(ValueError):
        plan.Pacer(0, 0.0)


@pytest.mark.parametrize("workers,users", [(4, 4), (2, 5), (3, 10), (8, 3), (1, 1)])
def test_every_user_has_a_worker_and_every_worker_a_user(workers, users):
    assigned = [plan.users_of_worker(w, workers, users) for w in range(workers)]
    assert all(assigned)
    assert set().union(*map(set, assigned)) == set(range(users))
    if workers <= users:  # each user driven by one worker only
        assert sum(map(len, assigned)) == users


def test_follow_targets_are_other_users():
    for user in range(5):
        targets = {plan.follow_target(user, 5, i / 100) for i in range(100)}
        assert targets == set(range(5)) - {user}
    assert plan.follow_target(0, 1, 0.5) is None


def test_usernames_fit_the_apps_rules():
    from chirp.validation import clean_username

    name = plan.username("deadbeef", 9999)
    assert clean_username(name) == name
