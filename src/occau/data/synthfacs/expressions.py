"""The latent expression model: why AUs co-occur, how often, and how they move over a sequence.

A sequence is a chain of expression *episodes* (smile, laugh, pain, sadness, surprise, ...; one at a time, each
with onset, apex and offset over tens of frames) plus short *overlays* that run on top of them (speech, lip
presses, brow flashes, blinks), isolated *spontaneous* single-AU actions, and *tonic* AUs that some subjects hold
throughout. Episodes give the strong pairs (6-12, 1-2, 15-17, ...), their exclusivity gives the negative ones
(12-15), overlays and spontaneous actions the weak ones. A human-like *coder* then turns the continuous intensity
into integer FACS codes with correlated noise near the decision threshold.

Everything that differs between ``synth-bp4d`` and ``synth-disfa`` is data in a ``VariantProfile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from occau.data.synthfacs.render import AU_INDEX, GENERATED_AUS

N_AUS = len(GENERATED_AUS)


@dataclass(frozen=True)
class Expression:
    """A facial expression as a recipe of AUs: AU -> (apex intensity at amplitude 1, chance the AU joins)."""

    aus: dict[int, tuple[float, float]]
    duration: tuple[int, int] = (14, 40)  # frames, onset to offset


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression({}, (6, 30)),
    "smile": Expression({6: (3.0, 0.9), 7: (2.6, 0.9), 10: (2.6, 0.95), 12: (3.5, 1.0), 14: (2.6, 0.7),
                         25: (2.0, 0.4), 26: (1.5, 0.1)}),
    "laugh": Expression({6: (4.0, 0.95), 7: (3.2, 0.9), 10: (3.2, 0.9), 12: (4.4, 1.0), 14: (2.2, 0.6),
                         25: (4.0, 0.95), 26: (3.6, 0.75)}, (12, 32)),
    "polite": Expression({12: (2.4, 1.0), 14: (2.6, 0.8), 10: (1.8, 0.6), 7: (1.6, 0.4), 6: (1.4, 0.25)}),
    "embarrassed": Expression({12: (2.6, 0.9), 14: (2.2, 0.55), 24: (2.6, 0.6), 23: (2.0, 0.5), 17: (2.2, 0.8),
                               6: (2.2, 0.45), 7: (2.2, 0.5), 10: (1.6, 0.35)}),
    "sadness": Expression({1: (2.8, 0.75), 4: (2.6, 0.7), 15: (3.0, 0.9), 17: (3.0, 0.9), 24: (2.0, 0.3),
                           23: (1.6, 0.2), 7: (1.6, 0.3)}),
    "surprise": Expression({1: (3.6, 0.95), 2: (3.6, 0.95), 5: (3.0, 0.8), 25: (3.0, 0.8), 26: (3.0, 0.6)},
                           (10, 28)),
    "fear": Expression({1: (3.0, 0.9), 2: (2.6, 0.8), 4: (2.6, 0.7), 5: (3.0, 0.7), 20: (3.0, 0.8), 25: (2.6, 0.6),
                        26: (1.6, 0.3), 7: (1.6, 0.3)}),
    "pain": Expression({4: (3.6, 0.9), 6: (3.0, 0.8), 7: (3.6, 0.9), 9: (2.6, 0.5), 10: (3.0, 0.8), 20: (2.0, 0.4),
                        25: (2.0, 0.5), 23: (2.0, 0.4), 24: (2.0, 0.3), 17: (1.6, 0.3)}),
    "disgust": Expression({9: (3.6, 0.9), 10: (3.6, 0.9), 4: (2.6, 0.6), 15: (2.6, 0.6), 17: (3.0, 0.8),
                           25: (1.6, 0.3), 7: (2.0, 0.5), 6: (1.6, 0.3)}),
    "anger": Expression({4: (3.6, 0.95), 5: (2.0, 0.5), 7: (3.0, 0.8), 23: (3.0, 0.8), 24: (3.0, 0.7),
                         17: (2.6, 0.85), 10: (1.6, 0.3)}),
    "doubt": Expression({14: (2.6, 0.9), 17: (2.2, 0.7), 24: (2.2, 0.5), 15: (1.8, 0.4), 4: (1.6, 0.3)}),
}

# Overlays: short actions on top of the current episode. speech moves the mouth rhythmically.
OVERLAYS: dict[str, Expression] = {
    "speech": Expression({25: (2.6, 1.0), 26: (1.8, 0.5), 10: (1.2, 0.15), 17: (1.4, 0.25), 24: (1.4, 0.2)}, (12, 36)),
    "lip_press": Expression({24: (2.8, 1.0), 23: (2.4, 0.9), 17: (2.4, 0.95), 14: (1.6, 0.3)}, (8, 20)),
    "mouth_open": Expression({25: (2.6, 1.0), 26: (2.2, 0.55)}, (8, 30)),
    "mouth_shrug": Expression({15: (2.4, 1.0), 17: (2.6, 0.85), 24: (1.6, 0.3)}, (8, 24)),
    "brow_flash": Expression({1: (2.6, 1.0), 2: (2.6, 0.9), 5: (1.4, 0.3)}, (6, 14)),
    "blink": Expression({}, (3, 6)),
}


@dataclass(frozen=True)
class VariantProfile:
    """How often things happen in one SynthFACS variant."""

    threshold: int  # a label is positive when the coded intensity is >= threshold
    tasks: tuple[dict[str, float], ...]  # one task per sequence: share of episodes per expression
    overlays: dict[str, float]  # events per 100 frames
    spontaneous: dict[int, float]  # isolated single-AU actions per 100 frames
    tonic: dict[int, tuple[float, float, float]]  # AU -> (share of subjects who hold it, low, high intensity)
    amplitude: tuple[float, float] = (0.45, 1.1)  # episode strength range, times the subject's expressivity
    coder_noise: float = 0.3  # sd of the coder's error in intensity units, correlated over ~5 frames


PROFILES: dict[str, VariantProfile] = {
    # BP4D: tasks elicit amusement, sadness, startle, embarrassment, fear, pain, anger, disgust; coded at their peaks
    "synth-bp4d": VariantProfile(
        threshold=1,
        tasks=(
            {"smile": 0.45, "laugh": 0.4, "polite": 0.1, "neutral": 0.05},
            {"sadness": 0.35, "polite": 0.3, "smile": 0.25, "neutral": 0.1},
            {"surprise": 0.3, "laugh": 0.3, "smile": 0.3, "neutral": 0.1},
            {"embarrassed": 0.5, "smile": 0.3, "laugh": 0.15, "neutral": 0.05},
            {"fear": 0.3, "polite": 0.3, "smile": 0.25, "neutral": 0.15},
            {"pain": 0.5, "smile": 0.35, "neutral": 0.15},
            {"anger": 0.35, "polite": 0.25, "smile": 0.2, "doubt": 0.1, "neutral": 0.1},
            {"disgust": 0.45, "laugh": 0.3, "smile": 0.15, "neutral": 0.1},
        ),
        overlays={"speech": 1.2, "lip_press": 0.3, "brow_flash": 1.6, "mouth_shrug": 0.8, "blink": 3.0},
        spontaneous={1: 0.15, 2: 0.15, 4: 0.3, 6: 0.2, 7: 0.7, 10: 0.6, 12: 0.8, 14: 0.55, 15: 0.2, 17: 0.5, 23: 0.4,
                     24: 0.1},
        tonic={7: (0.1, 0.8, 2.6), 10: (0.08, 0.8, 2.4), 14: (0.1, 0.8, 2.0), 17: (0.05, 0.8, 2.0),
               25: (0.3, 0.8, 2.0)},
    ),
    # DISFA: subjects watch video clips in silence; most frames are neutral and actions are mostly weak (< B)
    "synth-disfa": VariantProfile(
        threshold=2,
        tasks=(
            {"neutral": 0.77, "smile": 0.07, "laugh": 0.04, "polite": 0.05, "surprise": 0.03, "disgust": 0.03,
             "sadness": 0.03},
        ),
        overlays={"lip_press": 0.3, "brow_flash": 0.05, "mouth_open": 1.4, "blink": 3.0},
        spontaneous={4: 0.85, 25: 0.6, 12: 0.1, 1: 0.05, 9: 0.1},
        tonic={25: (0.06, 1.5, 3.0), 26: (0.02, 1.5, 2.6), 4: (0.04, 1.5, 3.0)},
        amplitude=(0.35, 1.0),
    ),
}


def variant_profile(variant: str) -> VariantProfile:
    try:
        return PROFILES[variant]
    except KeyError:
        raise ValueError(f"unknown SynthFACS variant {variant!r}; known: {sorted(PROFILES)}") from None


@dataclass(frozen=True)
class SubjectTraits:
    """A subject's temperament: how strongly and how often they show each expression, and their tonic AUs."""

    expressivity: float
    expression_gain: dict[str, float]  # multiplies the task's share of each expression
    tonic: np.ndarray = field(repr=False)  # (17,) intensity held throughout, 0 for most AUs


def sample_traits(profile: VariantProfile, rng: np.random.Generator) -> SubjectTraits:
    tonic = np.zeros(N_AUS)
    for au, (share, low, high) in profile.tonic.items():
        if rng.random() < share:
            tonic[AU_INDEX[au]] = rng.uniform(low, high)
    gains = {name: float(rng.lognormal(0.0, 0.2)) for name in EXPRESSIONS}
    return SubjectTraits(float(rng.lognormal(0.0, 0.1)), gains, tonic)


@dataclass(frozen=True)
class SequenceTrack:
    """Everything that moves in one sequence, frame by frame."""

    intensity: np.ndarray  # (T, 17) float32, continuous intensity 0..5 that the renderer draws
    coded: np.ndarray  # (T, 17) int8, the coder's integer FACS intensity (the labels)
    blink: np.ndarray  # (T,) float32, 0 open .. 1 closed
    gaze: np.ndarray  # (T, 2) float32
    pose: np.ndarray  # (T, 4) float32: dx, dy, angle (deg), scale - 1


def _envelope(n_frames: int, start: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Onset, apex, offset of one action as a smooth 0..1 curve over the sequence, (T,)."""
    onset = duration * rng.uniform(0.2, 0.35)
    offset = duration * rng.uniform(0.25, 0.4)
    t = np.arange(n_frames, dtype=np.float64)
    rise = np.clip((t - start) / onset, 0, 1)
    fall = np.clip((start + duration - t) / offset, 0, 1)
    x = np.minimum(rise, fall)
    return x * x * (3 - 2 * x)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """AR(1) noise along axis 0 with unit stationary variance."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = e[0]
    scale = np.sqrt(1 - rho * rho)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + scale * e[t]
    return out


def _add_action(x: np.ndarray, expr: Expression, env: np.ndarray, amp: float, rng: np.random.Generator) -> None:
    """Raise AU intensities in ``x`` (T, 17) to an action's envelope; co-occurring sources combine by max."""
    for au, (apex, chance) in expr.aus.items():
        if rng.random() < chance:
            i = AU_INDEX[au]
            np.maximum(x[:, i], min(5.0, apex * amp * rng.uniform(0.75, 1.25)) * env, out=x[:, i])


def _episodes(x: np.ndarray, task: dict[str, float], traits: SubjectTraits, profile: VariantProfile,
              rng: np.random.Generator) -> None:
    names = list(task)
    weights = np.array([task[n] * traits.expression_gain[n] for n in names])
    weights /= weights.sum()
    n_frames = x.shape[0]
    t = -rng.uniform(0, 30)  # the sequence starts in the middle of something
    while t < n_frames:
        name = names[rng.choice(len(names), p=weights)]
        expr = EXPRESSIONS[name]
        duration = rng.uniform(*expr.duration)
        if expr.aus:
            amp = rng.uniform(*profile.amplitude) * traits.expressivity
            _add_action(x, expr, _envelope(n_frames, t, duration, rng), amp, rng)
        t += duration * rng.uniform(0.8, 1.0)  # the next episode may begin while this one fades


def _overlays(x: np.ndarray, blink: np.ndarray, profile: VariantProfile, rng: np.random.Generator) -> None:
    n_frames = x.shape[0]
    for name, rate in profile.overlays.items():
        expr = OVERLAYS[name]
        for _ in range(rng.poisson(rate * (n_frames + 20) / 100)):
            start, duration = rng.uniform(-20, n_frames), rng.uniform(*expr.duration)
            env = _envelope(n_frames, start, duration, rng)
            if name == "blink":
                np.maximum(blink, env, out=blink)
                continue
            if name == "speech":  # syllables: the mouth opens and closes every few frames
                period = rng.uniform(4, 8)
                env = env * (0.55 + 0.45 * np.sin(2 * np.pi * np.arange(n_frames) / period + rng.uniform(0, 6.3)))
            _add_action(x, expr, env, rng.uniform(0.6, 1.1), rng)
    for au, rate in profile.spontaneous.items():
        single = Expression({au: (rng.uniform(1.2, 3.4), 1.0)}, (8, 30))
        for _ in range(rng.poisson(rate * (n_frames + 20) / 100)):
            env = _envelope(n_frames, rng.uniform(-15, n_frames), rng.uniform(*single.duration), rng)
            _add_action(x, single, env, 1.0, rng)


def code_intensity(x: np.ndarray, profile: VariantProfile, rng: np.random.Generator) -> np.ndarray:
    """Integer FACS codes (T, 17) a human coder would give: correlated error, only where an AU is actually moving."""
    noise = profile.coder_noise * _smooth_noise(rng, x.shape, rho=0.8)
    coded = np.rint(np.where(x > 0.2, x + noise, x))
    return np.clip(coded, 0, 5).astype(np.int8)


def task_index(profile: VariantProfile, subject: int, sequence: int, sequences_per_subject: int) -> int:
    """Which task a sequence records: subjects take consecutive tasks in turn, so every task is equally common."""
    return (subject * sequences_per_subject + sequence) % len(profile.tasks)


def sequence_track(profile: VariantProfile, traits: SubjectTraits, task: int, n_frames: int,
                   rng: np.random.Generator) -> SequenceTrack:
    """One sequence of a subject recording task number ``task``: AU intensities, codes and frame nuisance."""
    task = profile.tasks[task]
    x = np.zeros((n_frames, N_AUS))
    tonic = traits.tonic * rng.uniform(0.7, 1.2, N_AUS)
    x[:] = tonic * (1 + 0.1 * _smooth_noise(rng, (n_frames, N_AUS), rho=0.95))
    _episodes(x, task, traits, profile, rng)
    blink = np.zeros(n_frames)
    _overlays(x, blink, profile, rng)
    x += 0.12 * _smooth_noise(rng, x.shape, rho=0.9) * (x > 0.05)
    x = np.clip(x, 0.0, 5.0)
    coded = code_intensity(x, profile, rng)
    gaze = np.clip(0.5 * _smooth_noise(rng, (n_frames, 2), rho=0.9), -1, 1)
    drift = _smooth_noise(rng, (n_frames, 4), rho=0.95) * (0.006, 0.006, 1.5, 0.015)
    pose = drift + rng.standard_normal((n_frames, 4)) * (0.003, 0.003, 0.6, 0.006)
    return SequenceTrack(x.astype(np.float32), coded, blink.astype(np.float32), gaze.astype(np.float32),
                         pose.astype(np.float32))
