"""What a site sends back for its update: fp32 weights, or an fp16 / int8 change from the start
(shared_model/update_codec.py); the server decodes it, refusing a reply it cannot trust."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared_model.update_codec import decode, encode

EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture
def update():
    """(start, trained): two tensors a site received and what it trained them into."""
    rng = np.random.default_rng(0)
    start = {"clip.w": rng.normal(size=(16, 8)).astype(np.float32), "clip.b": rng.normal(size=8).astype(np.float32)}
    trained = {k: v + rng.normal(scale=1e-2, size=v.shape).astype(np.float32) for k, v in start.items()}
    return start, trained


def test_fp32_passes_through_unchanged(update):
    start, trained = update
    arrays, scales = encode(trained, start, "fp32")
    assert arrays is trained and scales == {}
    weights, problem = decode(arrays, scales, start, "fp32")
    assert problem is None and weights is trained


def test_fp16_sends_the_change_and_decodes_close_to_the_trained_weights(update):
    start, trained = update
    arrays, scales = encode(trained, start, "fp16")
    weights, problem = decode(arrays, scales, start, "fp16")
    assert problem is None and scales == {}
    for key, value in trained.items():
        assert arrays[key].dtype == np.float16 and weights[key].dtype == np.float32
        # The change, not the weights, is rounded: its ~1e-2 size at fp16's 11 bits.
        np.testing.assert_allclose(weights[key], value, rtol=0, atol=1e-5)


def test_int8_is_a_quarter_of_fp32_and_within_half_a_step(update):
    start, trained = update
    arrays, scales = encode(trained, start, "int8")
    weights, problem = decode(arrays, scales, start, "int8")
    assert problem is None
    assert sum(a.nbytes for a in arrays.values()) * 4 == sum(t.nbytes for t in trained.values())
    for key, value in trained.items():
        peak = np.abs(value - start[key]).max()
        assert arrays[key].dtype == np.int8 and scales[key].dtype == np.float32 and scales[key].shape == (1,)
        assert scales[key][0] == pytest.approx(peak / 127, rel=1e-6)
        assert np.abs(weights[key] - value).max() <= peak / 254 + 4 * EPS32 * np.abs(value).max()


def test_a_zero_change_is_zeros_with_scale_zero_and_decodes_exactly(update):
    start, _ = update
    arrays, scales = encode(start, start, "int8")
    weights, problem = decode(arrays, scales, start, "int8")
    assert problem is None
    assert all(not a.any() for a in arrays.values()) and all(s[0] == 0 for s in scales.values())
    assert all(np.array_equal(weights[k], start[k]) and weights[k].dtype == start[k].dtype for k in start)


def test_an_unknown_update_dtype_is_refused(update):
    start, trained = update
    with pytest.raises(ValueError, match="fp32, fp16 or int8"):
        encode(trained, start, "bf16")


def _break(arrays, scales, change):
    arrays, scales = dict(arrays), dict(scales)
    change(arrays, scales)
    return arrays, scales


@pytest.mark.parametrize("change, words", [
    (lambda a, s: a.__setitem__("clip.w", a["clip.w"].astype(np.float32)), "wrong dtype float32 of 'clip.w'"),
    (lambda a, s: a.__setitem__("clip.w", a["clip.w"][:4]), "wrong shape (4, 8) of 'clip.w'"),
    (lambda a, s: s.pop("clip.b"), "no valid scale for 'clip.b'"),
    (lambda a, s: s.__setitem__("clip.b", np.array([-1.0], np.float32)), "no valid scale for 'clip.b'"),
    (lambda a, s: s.__setitem__("clip.b", np.array([np.nan], np.float32)), "no valid scale for 'clip.b'"),
    (lambda a, s: s.__setitem__("clip.b", np.array([1.0], np.float64)), "no valid scale for 'clip.b'"),
    (lambda a, s: s.__setitem__("clip.b", np.ones(2, np.float32)), "no valid scale for 'clip.b'"),
    (lambda a, s: a.__setitem__("clip.extra", np.zeros(2, np.int8)), "unexpected tensor 'clip.extra'"),
    (lambda a, s: a.pop("clip.b"), "a scale for 'clip.b', which the reply does not carry"),
])
def test_a_malformed_int8_reply_is_refused_naming_the_tensor(update, change, words):
    start, trained = update
    arrays, scales = _break(*encode(trained, start, "int8"), change)
    weights, problem = decode(arrays, scales, start, "int8")
    assert weights is None and words in problem


def test_an_fp16_run_refuses_int8_arrays(update):
    start, trained = update
    arrays, scales = encode(trained, start, "int8")
    weights, problem = decode(arrays, scales, start, "fp16")
    assert weights is None and "wrong dtype int8" in problem and "(this run's updates are fp16)" in problem


_values = st.floats(-100, 100, width=32)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
       spread=st.sampled_from([0.0, 1e-6, 1e-2, 1.0, 50.0]))
def test_int8_error_is_at_most_half_a_quantisation_step(data, shape, spread):
    start = data.draw(hnp.arrays(np.float32, shape, elements=_values))
    delta = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-1, 1, width=32)))
    trained = (start + np.float32(spread) * delta).astype(np.float32)
    # Execute
    arrays, scales = encode({"w": trained}, {"w": start}, "int8")
    weights, problem = decode(arrays, scales, {"w": start}, "int8")
    # Assert: |error| <= s/2 = max|Δ|/254 per value, up to float32 rounding of the weights themselves
    assert problem is None and weights["w"].shape == shape and arrays["w"].dtype == np.int8
    peak = float(np.abs(trained.astype(np.float64) - start).max()) if trained.size else 0.0
    # float32's smallest normal number too: a change below it gives a scale that underflows to 0.
    bound = (peak / 254 * (1 + 1e-5) + 4 * EPS32 * (float(np.abs(trained).max()) if trained.size else 0.0)
             + float(np.finfo(np.float32).tiny))
    error = np.abs(weights["w"].astype(np.float64) - trained)
    assert (error <= bound).all()
