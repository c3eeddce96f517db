"""Labels and boxes drawn on BGR frames (OpenCV's order), for the demo."""
import cv2
import numpy as np

BOX_COLOR = (60, 220, 60)  # BGR
TEXT_COLOR = (0, 0, 0)


def squared_distance(a, b):
    """Squared L2 distance between unit embeddings (0 same, 4 opposite): the distance
    the model was trained on and retrieval ranks by."""
    return float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).sum())


def face_label(face, reference=None):
    """The text for one face: the top class and its probability, valence/arousal, the
    two strongest intensities, and for an embedding the squared distance to
    ``reference`` (a unit embedding) if given; the detector score when the model gives
    nothing else to show."""
    parts = []
    if face.probabilities is not None:
        name, prob = face.label
        parts.append(f"{name} {prob:.2f}")
    if face.valence is not None:
        parts.append(f"V{face.valence:+.2f} A{face.arousal:+.2f}")
    if face.intensities is not None:
        top = np.argsort(-face.intensities, kind="stable")[:2]
        parts += [f"{face.intensity_names[k]} {face.intensities[k]:.2f}" for k in top]
    if face.embedding is not None and reference is not None:
        parts.append(f"d2 {squared_distance(face.embedding, reference):.2f}")
    return " ".join(parts) or f"face {face.score:.2f}"


def draw_faces(frame, faces, labels):
    """Draw each face's box and label on ``frame`` (BGR, modified in place)."""
    h, w = frame.shape[:2]
    scale = max(0.4, min(w, h) / 800)
    thick = max(1, int(round(scale * 2)))
    for face, label in zip(faces, labels):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(frame, (x0, y0), (x1, y1), BOX_COLOR, thick)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        # Above the box, or inside its top when the box touches the top of the frame.
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else y0 + th + base + 4
        cv2.rectangle(frame, (x0, ty - th - base), (x0 + tw + 4, ty + base // 2), BOX_COLOR, -1)
        cv2.putText(frame, label, (x0 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOR, thick,
                    cv2.LINE_AA)
    return frame
