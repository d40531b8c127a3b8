"""Text for the report model: the tokenizer trained on the training reports."""

from securemed.text.tokenizer import ReportTokenizer

__all__ = ["ReportTokenizer"]
