"""Site-level DP: clipping, equal weights, noise scale, accounting and budget stop (real Messages, no runtime)."""
from __future__ import annotations

import dp_accounting
import numpy as np
import prv_accountant as msprv
import pytest
from dp_accounting.rdp import RdpAccountant
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from privacy.accounting import epsilon as our_epsilon
from server.site_dp import WEIGHT_KEY, SiteDPConfig, SiteLevelDP, site_level_epsilon
from server.strategy import make_strategy

NODES = [11, 12, 13, 14]
START = {"clip.w": np.zeros(2000, np.float32), "clip.pos": np.arange(4, dtype=np.int64),
         "lm.w": np.full(5, 0.5, np.float32)}


class _Grid:
    def get_node_ids(self):
        return NODES


def _dp(noise: float = 1.0, clip: float = 1.0, **kw) -> SiteLevelDP:
    inner = make_strategy("fedavg", schedule="contrastive", site_names=[f"site-{i}" for i in range(len(NODES))],
                          total_rounds=5, fraction_train=1.0, min_train_nodes=1, min_available_nodes=1,
                          weighted_by_key=WEIGHT_KEY)
    return SiteLevelDP(inner, SiteDPConfig(noise_multiplier=noise, clipping_norm=clip, **kw))


def _round(strategy: SiteLevelDP, updates: dict[int, np.ndarray | None], server_round: int = 1,
           examples: dict[int, int] | None = None, extra: dict[str, np.ndarray] | None = None
           ) -> dict[str, np.ndarray]:
    """``updates``: node -> update of clip.w (None: the site has nothing to train); ``extra``: more arrays each sends."""
    arrays = ArrayRecord({k: Array(v) for k, v in START.items()})
    messages = strategy.configure_train(server_round, arrays, ConfigRecord({}), _Grid())
    replies = []
    for msg in messages:
        node = msg.metadata.dst_node_id
        if node not in updates:
            continue
        update = updates[node]
        trained = {} if update is None else {"clip.w": Array(START["clip.w"] + update),
                                             "clip.pos": Array(START["clip.pos"])}
        trained.update({k: Array(v) for k, v in (extra or {}).items()} if update is not None else {})
        n = 0 if update is None else (examples or {}).get(node, 10)
        replies.append(Message(RecordDict({
            "arrays": ArrayRecord(trained),
            "metrics": MetricRecord({"num-examples": n, "site-index": NODES.index(node), "bytes-up": 1,
                                     "seconds": 0.1, "loss": 1.0})}), reply_to=msg))
    out, _ = strategy.aggregate_train(server_round, replies)
    return {} if out is None else {k: v.numpy() for k, v in out.items()}


def _direction(norm: float, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=START["clip.w"].shape)
    return (v / np.linalg.norm(v) * norm).astype(np.float32)


def test_one_site_moves_the_noiseless_aggregate_by_at_most_c_over_k():
    # Prepare: noise negligible, so only clipping and the fixed denominator act; one update 20x C
    # (under screening's max-update-rms: a far larger one is rejected before it is clipped).
    clip, huge = 1.0, _direction(20.0, 0)
    others = {12: _direction(0.3, 1), 13: _direction(3.0, 2), 14: None}
    # Execute: the same round with and without site 11
    with_it = _round(_dp(noise=1e-9, clip=clip), {11: huge, **others})
    without = _round(_dp(noise=1e-9, clip=clip), {11: np.zeros_like(huge), **others})
    # Assert: sensitivity C/K in L2 over the trained half, K = the 4 sites asked
    assert np.linalg.norm(with_it["clip.w"] - without["clip.w"]) <= clip / len(NODES) + 1e-5
    assert np.linalg.norm(with_it["clip.w"] - without["clip.w"]) > 0.9 * clip / len(NODES)


def test_sites_weigh_equally_whatever_their_example_counts():
    update = {11: _direction(0.5, 3), 12: -_direction(0.5, 3)}
    out = _round(_dp(noise=1e-9, clip=1.0), update, examples={11: 1000, 12: 1})
    assert np.abs(out["clip.w"]).max() < 1e-6  # example-weighted FedAvg would keep ~the first update


def test_noise_has_the_stated_scale_only_where_the_objective_trained():
    dp = _dp(noise=2.0, clip=0.5)
    out = _round(dp, {n: np.zeros(2000, np.float32) for n in NODES})
    assert np.std(out["clip.w"]) == pytest.approx(2.0 * 0.5 / len(NODES), rel=0.1)
    assert np.array_equal(out["clip.pos"], START["clip.pos"])  # integer position ids untouched
    assert np.array_equal(out["lm.w"], START["lm.w"])  # the other objective's half did not move
    assert dp.rounds[1]["sites_in_denominator"] == len(NODES) and dp.rounds[1]["released_rounds"] == 1


def test_epsilon_is_what_independent_accountants_give_for_r_gaussian_releases():
    for z, rounds, delta in [(1.0, 12, 1e-5), (2.0, 50, 1e-5), (5.0, 4, 1e-6), (0.8, 3, 1e-5)]:
        ours = site_level_epsilon(noise_multiplier=z, rounds=rounds, delta=delta)
        google = RdpAccountant()
        google.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds))
        assert ours == pytest.approx(google.get_epsilon(delta), rel=1e-4)
        # The privacy officer's own command (Opacus RDP, q = 1) gives the same number.
        assert ours == pytest.approx(our_epsilon([(z, 1.0, rounds)], delta=delta, accountant="rdp"), rel=1e-4)
        # RDP is an upper bound on the exact ε (R Gaussians = one with z/√R), and not a loose one.
        exact = dp_accounting.get_epsilon_gaussian(z / rounds ** 0.5, delta)
        prv = msprv.PRVAccountant(prvs=[msprv.PoissonSubsampledGaussianMechanism(noise_multiplier=z,
                                                                                  sampling_probability=1.0)],
                                  max_self_compositions=[rounds], eps_error=0.01, delta_error=delta / 1000)
        assert prv.compute_epsilon(delta=delta, num_self_compositions=[rounds])[2] == pytest.approx(exact, abs=0.02)
        assert exact <= ours <= 1.1 * exact


def test_results_state_the_running_epsilon_and_the_run_stops_before_the_budget():
    one = site_level_epsilon(noise_multiplier=3.0, rounds=1, delta=1e-5)
    two = site_level_epsilon(noise_multiplier=3.0, rounds=2, delta=1e-5)
    dp = _dp(noise=3.0, clip=1.0, max_epsilon=(two + site_level_epsilon(noise_multiplier=3.0, rounds=3,
                                                                         delta=1e-5)) / 2)
    _round(dp, {n: _direction(0.1, n) for n in NODES}, server_round=1)
    _round(dp, {n: _direction(0.1, n) for n in NODES}, server_round=2)
    assert dp.rounds[1]["epsilon"] == pytest.approx(one) and dp.rounds[2]["epsilon"] == pytest.approx(two)
    arrays = ArrayRecord({k: Array(v) for k, v in START.items()})
    assert list(dp.configure_train(3, arrays, ConfigRecord({}), _Grid())) == []
    assert dp.aggregate_train(3, []) == (None, None) and dp.released == 2
    assert "site-dp-max-epsilon" in dp.round_log[3]["stopped"]


def test_a_round_without_any_update_spends_nothing():
    dp = _dp(noise=1.0)
    arrays = ArrayRecord({k: Array(v) for k, v in START.items()})
    dp.configure_train(1, arrays, ConfigRecord({}), _Grid())
    assert dp.aggregate_train(1, []) == (None, None) and dp.released == 0


@pytest.mark.parametrize("kwargs, strategy, secagg, words", [
    ({"noise_multiplier": -1}, "fedavg", False, "--site-dp"),
    ({"noise_multiplier": 1, "clipping_norm": 0}, "fedavg", False, "--site-dp-clip"),
    ({"noise_multiplier": 1, "delta": 1.5}, "fedavg", False, "--site-dp-delta"),
    ({"noise_multiplier": 1}, "fedavg", True, "SecAgg+"),
    ({"noise_multiplier": 1}, "fedadam", False, "fedavg or fedprox"),
])
def test_bad_settings_are_refused_with_the_flag_named(kwargs, strategy, secagg, words):
    with pytest.raises(ValueError, match=words.replace("+", r"\+")):
        SiteDPConfig(**kwargs).check_compatible(strategy=strategy, secagg=secagg)


def test_arrays_outside_what_the_round_trains_never_reach_the_aggregate_unclipped():
    # A reply that also carries the other objective's half (a buggy or hostile site) is rejected whole.
    dp = _dp(noise=1e-9, clip=1.0)
    assert _round(dp, {11: _direction(0.1, 4)}, extra={"lm.w": np.full(5, 1e6, np.float32)}) == {}
    assert dp.round_log[1]["sites"]["site-0"]["status"] == ("rejected: unexpected tensor 'lm.w' "
                                                            "(a contrastive round does not train it)")
    assert dp.released == 0  # nothing released, nothing spent


def test_with_adapters_only_the_adapter_vector_is_clipped_and_noised():
    # Prepare: an adapted model's keys (shared_model.adapters): a frozen base, its LoRA pair, a head
    start = {"clip.q.base_layer.weight": np.full(300, 0.25, np.float32),
             "clip.q.lora_A.default.weight": np.zeros(400, np.float32),
             "clip.q.lora_B.default.weight": np.zeros(400, np.float32),
             "clip.image_proj.weight": np.zeros(200, np.float32)}
    sent = [k for k in start if "base_layer" not in k]
    dp = _dp(noise=2.0, clip=0.5)
    messages = dp.configure_train(1, ArrayRecord({k: Array(v) for k, v in start.items()}), ConfigRecord({}), _Grid())
    replies = [Message(RecordDict({
        "arrays": ArrayRecord({k: Array(start[k] + np.float32(0.5)) for k in sent}),  # norm 16 >> C: clipped
        "metrics": MetricRecord({"num-examples": 10, "site-index": NODES.index(m.metadata.dst_node_id),
                                 "bytes-up": 1, "seconds": 0.1, "loss": 1.0})}), reply_to=m) for m in messages]
    # Execute
    out, _ = dp.aggregate_train(1, replies)
    out = {k: v.numpy() for k, v in out.items()}
    # Assert: the frozen base is bit-exact; the adapter vector moved by the clipped mean plus N(0, (zC/K)^2)
    assert np.array_equal(out["clip.q.base_layer.weight"], start["clip.q.base_layer.weight"])
    moved = np.concatenate([out[k] - start[k] for k in sent])
    clipped_mean = 0.5 / np.sqrt(len(moved))  # every site sent the same direction, clipped to C = 0.5
    assert np.std(moved) == pytest.approx(2.0 * 0.5 / len(NODES), rel=0.1)
    assert np.mean(moved) == pytest.approx(clipped_mean, abs=3 * 2.0 * 0.5 / len(NODES) / np.sqrt(len(moved)))
