"""A generated moving street scene: the default demo source, and deterministic frames for tests.

``SyntheticScene(h, w).frame(i)`` is a pure function of (h, w, seed, i): sky, a scrolling row of
buildings with windows (parallax), trees, a sidewalk, a road with moving lane marks, cars driving both
ways and people walking, with a fixed sensor-noise texture so the model sees image-like statistics.
``labels(i)`` is the frame's ground truth in Cityscapes trainIds (road, sidewalk, building, vegetation,
sky, person, car), e.g. to look at the overlay without a trained model; ``annotations(i)`` adds an
instance id per car and person. With ``crowd=True`` a group of people stands on the sidewalk, labelled
person without instance ids (how Cityscapes marks crowds); with ``ego=True`` a strip of the ego vehicle
covers the bottom of the frame (void, 255). This one scene is also what `pem synthetic` writes as a
Cityscapes-format dataset (training/data/synthetic.py), so a model trained on it segments the stream.
"""

from __future__ import annotations

import cv2
import numpy as np

from pem_rt.segments import VOID

FPS = 30.0
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 8, 10, 11, 13  # Cityscapes trainIds


class _Truth:
    """The ground truth a render draws into: trainIds and instance ids (0 = no instance)."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.instances = np.zeros(labels.shape, dtype=np.int32)
        self.next_id = 1

    def draw(self, shapes: list[tuple[str, tuple[object, ...]]], label: int, instance: bool) -> None:
        """Fill ``shapes`` (cv2 function name, its arguments after the image) with ``label``; a new
        instance id when ``instance``, else instance 0 (a crowd region)."""
        iid = self.next_id if instance else 0
        for fn, args in shapes:
            getattr(cv2, fn)(self.labels, *args[:-1], label, *args[-1:])
            getattr(cv2, fn)(self.instances, *args[:-1], iid, *args[-1:])
        if instance:
            self.next_id += 1


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return rgb[2], rgb[1], rgb[0]


class SyntheticScene:
    """Args: height, width of the frames; seed of the layout (buildings, colours, traffic); crowd: a
    group of people labelled as a crowd; ego: an ego-vehicle strip (void) at the bottom."""

    def __init__(
        self, height: int = 720, width: int = 1280, seed: int = 0, crowd: bool = False, ego: bool = False
    ) -> None:
        if height < 16 or width < 16:
            raise ValueError(f"synthetic frames need at least 16x16 pixels, got {height}x{width}")
        self.height, self.width = height, width
        rng = np.random.default_rng(seed)
        self.horizon = int(height * 0.55)
        self.road_top = int(height * 0.68)
        self._panorama, self._panorama_labels = self._buildings(rng, width * 3)
        noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
        self._background = self._static_background(noise)
        cars = [
            (
                float(rng.uniform(0, 1)),  # phase
                float(rng.choice([-1, 1]) * rng.uniform(0.004, 0.012)),  # speed in widths per frame
                _bgr(tuple(int(c) for c in rng.integers(30, 230, 3))),  # type: ignore[arg-type]
                float(rng.uniform(0, 1)),  # lane
            )
            for _ in range(4)
        ]
        self._cars = sorted(cars, key=lambda c: c[3])  # far lane first, so near cars cover far ones
        self._people = [
            (float(rng.uniform(0, 1)), float(rng.uniform(0.001, 0.003) * rng.choice([-1, 1])))
            for _ in range(3)
        ]
        self._crowd = float(rng.uniform(0.1, 0.7)) if crowd else None  # x position of the group
        self._ego = ego

    def _buildings(self, rng: np.random.Generator, width: int) -> tuple[np.ndarray, np.ndarray]:
        h = self.horizon
        pano = np.zeros((h, width, 3), dtype=np.uint8)
        labels = np.full((h, width), SKY, dtype=np.uint8)
        sky_top, sky_bottom = np.array(_bgr((70, 130, 200))), np.array(_bgr((190, 215, 235)))
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        pano[:] = (sky_top * (1 - t) + sky_bottom * t).astype(np.uint8)
        x = 0
        unit = max(2, self.height // 60)
        while x < width:
            bw = int(rng.integers(6, 16)) * unit
            top = int(h * rng.uniform(0.1, 0.6))
            colour = _bgr(tuple(int(c) for c in rng.integers(70, 170, 3)))  # type: ignore[arg-type]
            cv2.rectangle(pano, (x, top), (x + bw, h), colour, -1)
            cv2.rectangle(labels, (x, top), (x + bw, h), BUILDING, -1)
            win = _bgr((230, 220, 150)) if rng.uniform() < 0.3 else _bgr((60, 70, 90))
            for wy in range(top + unit, h - 2 * unit, 3 * unit):
                for wx in range(x + unit, x + bw - unit, 2 * unit):
                    cv2.rectangle(pano, (wx, wy), (wx + unit - 1, wy + unit + unit // 2), win, -1)
            if rng.uniform() < 0.35:  # a tree in front
                cx, r = x + bw // 2, int(unit * rng.uniform(3, 5))
                trunk = ((cx - unit // 2, h - 4 * r // 3), (cx + unit // 2, h))
                cv2.rectangle(pano, *trunk, _bgr((90, 60, 30)), -1)
                cv2.rectangle(labels, *trunk, VEGETATION, -1)
                cv2.circle(pano, (cx, h - 2 * r), r, _bgr((50, 120, 40)), -1, cv2.LINE_AA)
                cv2.circle(labels, (cx, h - 2 * r), r, VEGETATION, -1)
            x += bw + int(rng.integers(0, 3)) * unit
        return pano, labels

    def _static_background(self, noise: np.ndarray) -> np.ndarray:
        h, w = self.height, self.width
        bg = np.zeros((h, w, 3), dtype=np.float32)
        bg[self.horizon : self.road_top] = _bgr((170, 165, 160))  # sidewalk
        bg[self.road_top :] = _bgr((90, 90, 95))  # road
        bg[self.road_top - max(1, h // 120) : self.road_top] = _bgr((200, 200, 200))  # kerb
        return np.clip(bg + noise, 0, 255).astype(np.uint8)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (BGR uint8 [height, width, 3])."""
        return self._render(index, None)

    def labels(self, index: int) -> np.ndarray:
        """Ground truth of frame ``index``: uint8 [height, width] Cityscapes trainIds (255 = void)."""
        return self.annotations(index)[0]

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(trainIds uint8 [H, W], instance ids int32 [H, W]: one per car and person, 0 elsewhere)."""
        h, w = self.height, self.width
        labels = np.full((h, w), ROAD, dtype=np.uint8)
        labels[self.horizon : self.road_top] = SIDEWALK
        truth = _Truth(labels)
        self._render(index, truth)
        return truth.labels, truth.instances

    def _render(self, index: int, truth: _Truth | None) -> np.ndarray:
        h, w = self.height, self.width
        img = self._background.copy()
        shift = int(index * w * 0.002) % (self._panorama.shape[1] - w)
        img[: self.horizon] = self._panorama[:, shift : shift + w]
        if truth is not None:
            truth.labels[: self.horizon] = self._panorama_labels[:, shift : shift + w]
        # lane marks moving towards the viewer
        lane_y = (self.road_top + h) // 2
        dash, gap = max(4, w // 16), max(4, w // 24)
        offset = int(index * w * 0.01) % (dash + gap)
        thick = max(1, h // 90)
        for x in range(-dash - gap + offset, w, dash + gap):
            cv2.rectangle(img, (x, lane_y - thick), (x + dash, lane_y + thick), (230, 230, 230), -1)
        if self._crowd is not None:
            self._group(img, truth)
        for phase, speed, colour, lane in self._cars:
            self._car(img, phase + index * speed, colour, lane, truth)
        for phase, speed in self._people:
            self._person(img, phase + index * speed, index, truth)
        if self._ego:
            top = h - max(2, h // 12)
            hood = ((w // 2, h + (h - top)), (int(w * 0.6), 2 * (h - top)), 0, 180, 360, -1)
            cv2.ellipse(img, *hood[:5], (35, 35, 40), -1)
            if truth is not None:
                truth.draw([("ellipse", hood)], VOID, instance=False)
        return img

    def _group(self, img: np.ndarray, truth: _Truth | None) -> None:
        """A standing group of people on the sidewalk, one crowd region (no instance ids)."""
        h, w = self.height, self.width
        ph = int(h * 0.13)
        foot = self.road_top - max(2, h // 60)
        x0 = int((self._crowd or 0.0) * w)
        shapes: list[tuple[str, tuple[object, ...]]] = []
        for k in range(5):
            x = x0 + k * max(3, ph // 5)
            body = ((x, foot - ph // 2), (max(2, ph // 8), ph // 3), 0, 0, 360, -1)
            head = ((x, foot - ph), max(2, ph // 10), -1)
            cv2.ellipse(img, *body[:5], (70 + 20 * k, 60, 120), -1, cv2.LINE_AA)
            cv2.circle(img, *head[:2], (140, 170, 210), -1, cv2.LINE_AA)
            shapes += [("ellipse", body), ("circle", head)]
        if truth is not None:
            truth.draw(shapes, PERSON, instance=False)

    def _car(
        self,
        img: np.ndarray,
        pos: float,
        colour: tuple[int, int, int],
        lane: float,
        truth: _Truth | None,
    ) -> None:
        h, w = self.height, self.width
        cw, ch = int(w * 0.16), int(h * 0.09)
        x = int((pos % 1.4 - 0.2) * w)
        y = int(self.road_top + (h - self.road_top) * (0.25 + 0.5 * lane))
        cv2.rectangle(img, (x, y - ch), (x + cw, y), colour, -1, cv2.LINE_AA)
        cv2.rectangle(
            img, (x + cw // 5, y - ch - ch // 2), (x + 4 * cw // 5, y - ch), colour, -1, cv2.LINE_AA
        )
        cv2.rectangle(
            img, (x + cw // 4, y - ch - ch // 3), (x + 3 * cw // 4, y - ch), (200, 170, 140), -1, cv2.LINE_AA
        )
        r = max(2, ch // 3)
        for cx in (x + cw // 5, x + 4 * cw // 5):
            cv2.circle(img, (cx, y), r, (25, 25, 25), -1, cv2.LINE_AA)
        if truth is not None:
            shapes: list[tuple[str, tuple[object, ...]]] = [
                ("rectangle", ((x, y - ch), (x + cw, y), -1)),
                ("rectangle", ((x + cw // 5, y - ch - ch // 2), (x + 4 * cw // 5, y - ch), -1)),
            ]
            shapes += [("circle", ((cx, y), r, -1)) for cx in (x + cw // 5, x + 4 * cw // 5)]
            truth.draw(shapes, CAR, instance=True)

    def _person(self, img: np.ndarray, pos: float, index: int, truth: _Truth | None) -> None:
        h, w = self.height, self.width
        x = int((pos % 1.2 - 0.1) * w)
        foot = self.road_top - max(2, h // 60)
        ph = int(h * 0.16)
        bob = int(abs(np.sin(index * 0.4)) * ph * 0.03)
        body = (60, 40, 160)
        cv2.ellipse(
            img, (x, foot - ph // 2 - bob), (max(2, ph // 6), ph // 4), 0, 0, 360, body, -1, cv2.LINE_AA
        )
        cv2.circle(img, (x, foot - 7 * ph // 8 - bob), max(2, ph // 8), (150, 180, 220), -1, cv2.LINE_AA)
        step = int(np.sin(index * 0.4) * ph * 0.12)
        thick = max(1, ph // 10)
        cv2.line(img, (x, foot - ph // 4 - bob), (x + step, foot), (40, 40, 40), thick, cv2.LINE_AA)
        cv2.line(img, (x, foot - ph // 4 - bob), (x - step, foot), (40, 40, 40), thick, cv2.LINE_AA)
        if truth is not None:
            axes = (max(2, ph // 6), ph // 4)
            truth.draw(
                [
                    ("ellipse", ((x, foot - ph // 2 - bob), axes, 0, 0, 360, -1)),
                    ("circle", ((x, foot - 7 * ph // 8 - bob), max(2, ph // 8), -1)),
                    ("line", ((x, foot - ph // 4 - bob), (x + step, foot), thick)),
                    ("line", ((x, foot - ph // 4 - bob), (x - step, foot), thick)),
                ],
                PERSON,
                instance=True,
            )
