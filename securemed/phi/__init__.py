"""PHI de-identification of clinical text: find the 18 HIPAA Safe Harbor identifiers, replace them.

    from securemed.phi import PhiAnonymizer, AnonymizerConfig
    anonymizer = PhiAnonymizer(AnonymizerConfig(operator="tag"))
    anonymizer.anonymize("Seen by Dr. Chen on 03/04/2021.").text
    # 'Seen by Dr. <PERSON> on <DATE>.'

Runs fully offline (spaCy model installed as a package, tldextract on its bundled snapshot) and
never imports Ray or Serve. Which entity type covers which Safe Harbor identifier is documented
in :mod:`securemed.phi.entities`. DICOM headers and burned-in pixel text are other modules of
this package and are not imported here.
"""

from securemed.phi.anonymizer import AnonymizedText, AnonymizerConfig, PhiAnonymizer
from securemed.phi.entities import PHI_ENTITY_TYPES, PhiEntity

__all__ = [
    "PHI_ENTITY_TYPES",
    "AnonymizedText",
    "AnonymizerConfig",
    "PhiAnonymizer",
    "PhiEntity",
]
