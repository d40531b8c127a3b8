"""The text PHI anonymizer beside plain Presidio, on the same generated notes.

* PhiAnonymizer (our recognizers, spaCy NER cleaned, tag operator) versus Presidio's
  ``AnalyzerEngine`` with its predefined recognizers and the same offline spaCy model, followed
  by ``AnonymizerEngine`` with its default operator: documents per second, single thread.
* Each one's recall on those notes (a true span counts when all its letters and digits were
  removed, whatever the label) so that the speed is read beside what it buys.

Plain Presidio's e-mail recognizer is swapped for the same regex validated with tldextract's
bundled suffix list: the stock one downloads the list, and this machine has no network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from securemed.phi import PhiAnonymizer
from securemed.phi.corpus import AnnotatedNote, generate_phi_notes
from securemed.phi.detection import SPACY_MODEL
from securemed.phi.entities import PhiEntity
from securemed.phi.evaluation import score_notes
from securemed.phi.recognizers import OfflineEmailRecognizer


def plain_presidio() -> tuple[Any, Any]:
    """Presidio's analyzer and anonymizer with their defaults, offline."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
        }
    ).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    analyzer.registry.remove_recognizer("EmailRecognizer")
    analyzer.registry.add_recognizer(OfflineEmailRecognizer())
    return analyzer, AnonymizerEngine()


def _coverage(notes: Sequence[AnnotatedNote], spans: Sequence[Sequence[tuple[int, int]]]) -> float:
    """Overall recall: detected spans relabelled to one type (recall ignores labels)."""
    predictions = [[PhiEntity("PERSON", s, e, 1.0) for s, e in found if e > s] for found in spans]
    return score_notes(notes, predictions)["overall"].recall


def _docs_per_second(run: Callable[[str], object], texts: Sequence[str], repeats: int) -> float:
    run(texts[0])  # warm-up: first-call allocations are not throughput
    started = time.perf_counter()
    for _ in range(repeats):
        for text in texts:
            run(text)
    return repeats * len(texts) / (time.perf_counter() - started)


def measure_anonymizer(*, notes: int = 200, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Documents per second and recall of PhiAnonymizer and of plain Presidio."""
    corpus = generate_phi_notes(notes, seed)
    texts = [note.text for note in corpus]
    ours = PhiAnonymizer()
    analyzer, anonymizer = plain_presidio()

    def presidio_run(text: str) -> str:
        results = analyzer.analyze(text=text, language="en")
        return str(anonymizer.anonymize(text=text, analyzer_results=results).text)

    ours_dps = _docs_per_second(ours.anonymize, texts, repeats)
    presidio_dps = _docs_per_second(presidio_run, texts, repeats)
    ours_spans = [[(e.start, e.end) for e in ours.find(text)] for text in texts]
    presidio_spans = [
        [(r.start, r.end) for r in analyzer.analyze(text=text, language="en")] for text in texts
    ]
    return {
        "notes": notes,
        "repeats": repeats,
        "seed": seed,
        "mean_note_chars": sum(map(len, texts)) / len(texts),
        "phi_anonymizer_docs_per_s": ours_dps,
        "presidio_docs_per_s": presidio_dps,
        "time_ratio": presidio_dps / ours_dps,  # our time per document over Presidio's
        "phi_anonymizer_recall": _coverage(corpus, ours_spans),
        "presidio_recall": _coverage(corpus, presidio_spans),
    }
