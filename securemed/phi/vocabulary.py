"""Words that look like names or places to a small NER model but are clinical language.

spaCy's small English model tags "Cardiomegaly" as a place, "Foley" as a person and "CT" as an
organisation. Removing those would make reports useless, so NER spans made only of the words
below are dropped, and pattern-found names are trimmed where they run into them. A name that
is also a clinical word ("Mr. Foley") is still found by the title and label patterns, which do
not consult this list.

The lists are deliberately hand-written and small: they are an allow-list for precision, not a
dictionary the evaluation corpus is drawn from.
"""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: keeps long word lists readable."""
    return frozenset(text.split())


#: findings, anatomy, devices, procedures, drugs and report words (lower case)
CLINICAL_TERMS: frozenset[str] = words(
    """
    abdomen abdominal ablation abscess acute adenopathy admission admit admitted advised air
    airspace alveolar amiodarone amlodipine anemia aneurysm angiography anterior antibiotics aorta
    aortic ap apex apical appendix arterial artery aspiration aspirin asthma atelectasis atrial
    atrium atypical augmentin axial azithromycin basal base bases basilar bibasilar bilateral
    biopsy bladder blunting bone bowel bp brain breast bronchial bronchitis bronchus bypass cabg
    calcification calcified cancer cardiac cardiology cardiomegaly cardiomediastinal
    cardiopulmonary catheter cavitation cavity ceftriaxone central cephalization cerebral cervical
    chest chf chronic clavicle clear clinic clinical clopidogrel collapse comparison
    compression congestion consolidation contrast copd coronary costophrenic cough ct cta cxr cyst
    decubitus deformity degenerative dense density diabetes diaphragm diffuse dilated discharge
    disease distal distress drain drainage dyspnea ecg echo edema effusion effusions elevated
    emphysema emergency endotracheal enlarged enlargement ett exam examination expiratory
    extubation fever fibrosis findings fissure fluid focal foley fracture frontal furosemide
    ganglion gastric granuloma haziness head heart heparin hernia hilar hilum history hospital
    hyperinflation hypertension ij impression indication infarct infection infiltrate inferior
    inspiratory insulin interstitial intubated intubation ischemia jugular kidney kub lasix lateral
    left lesion line lines lingula lisinopril liver lobar lobe lobes lower lucency lung lungs lymph
    lymphadenopathy magnetic malignancy mass mediastinal mediastinum metformin metoprolol
    microbiology mid middle mild minimal moderate mri mrsa nasogastric neck negative nephrology
    neurology nodular nodule nodules normal ng nursing obstruction oncology opacification
    opacities opacity opacification orthopedic osseous pa pacemaker pacer pain parenchyma
    parenchymal patchy pathology pectus peribronchial pericardial pet picc pleura pleural
    pneumonia pneumonitis pneumoperitoneum pneumothorax portable port posterior prednisone prior
    procedure prominence prominent proximal pulmonary pulmonology radiograph radiographs radiology
    recommend recommendation rehab renal report resolution resolved respiratory rib ribs right
    sarcoidosis scan scoliosis sepsis septal severe shadow shortness silhouette sinus small soft
    spine splenomegaly stable stenosis sternotomy stent subcutaneous subsegmental superior
    supine surgery swan symptoms syndrome technique thickening thoracic thoracotomy thorax trachea
    tracheostomy trauma tube tuberculosis tumor ultrasound unchanged upper urine vancomycin
    vascular vascularity vein venous ventricle ventricular vertebral view views volume volumes
    warfarin wheezing wire xray x-ray zosyn ganz hickman mediport ij svc ivc cabg tavr
    lll lul rll rul rml ards sob icu ccu ed er or pacu ekg bnp cbc bmp inr ptt wbc hgb
    pe dvt mi cad afib htn dm ckd esrd uti gerd osa hiv hcv hbv covid sars gi gu ent ob gyn
    nicu picu hr rr spo2 sat temp wt ht bmi prn po iv im sq bid tid qid qd qhs
    patient pt male female man woman mr mrs ms dr md rn np do
    swan-ganz glucose sodium potassium chloride creatinine hemoglobin hematocrit platelets
    albumin bilirubin lactate troponin albuterol furosemide tartrate penicillins allergies
    service medicine chief complaint followup instructions medications summary
    """
)

#: words that end a name found by a pattern ("Smith Reports ...", "Jones MRN ...")
NAME_STOPWORDS: frozenset[str] = words(
    """
    a an and are as at be by for from has have he her him his in is it its of on or our she
    that the their them they this to was were who with will would you your we
    name patient pt attending referring physician provider signed dictated reviewed seen sincerely
    regards dear date dob mrn id no number phone fax email address tel cell age sex male female
    admitted discharged presents presented reports denies complains notes states today yesterday
    re subject cc from to attn daughter son wife husband mother father sister brother spouse
    contact emergency kin next guardian caregiver partner friend clinic hospital center medical
    unit ward room bed floor service department team radiology report exam study history
    electronically by comparison indication technique findings impression signature
    aged yo old year years y.o y.o. y/o
    """
)

#: titles that precede a name and are not part of it
TITLES: frozenset[str] = words(
    "dr dr. mr mr. mrs mrs. ms ms. miss mx mx. prof prof. professor doctor nurse sister rev "
    "rev. father"
)

US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "DC": "District of Columbia",
}  # fmt: skip

#: state abbreviations that are also common clinical or English words: only trusted before a ZIP
AMBIGUOUS_STATE_CODES: frozenset[str] = frozenset(
    {"CA", "CO", "CT", "DE", "GA", "HI", "IN", "LA", "MA", "MD", "ME", "MS", "OH", "OK", "OR",
     "PA", "ID", "MI", "MO", "NE", "SC", "VA", "DC"}
)  # fmt: skip

#: regions that Safe Harbor lets a record keep (a state or a country), lower case
NON_PHI_PLACES: frozenset[str] = frozenset(
    {name.lower() for name in US_STATES.values()}
    | {code.lower() for code in US_STATES}
    | {
        "us", "u.s.", "usa", "u.s.a.", "united states", "america", "uk", "u.k.",
        "united kingdom", "england", "scotland", "wales", "ireland", "canada", "mexico",
        "germany", "france", "spain", "italy", "india", "china", "japan", "brazil",
        "australia", "europe", "asia", "africa", "the united states", "portugal",
        "netherlands", "poland", "nigeria", "philippines", "korea", "vietnam",
    }
)  # fmt: skip

#: given names that are also everyday English words ("Will review", "Hope to discharge"):
#: taken as names only in a name position (after a title or label, before a capitalised
#: surname, after "Surname,"), never alone in running text
WORD_NAMES: frozenset[str] = words(
    """
    will mark hope rose joy ivy faith grace dale heath summer autumn april june may iris
    lily daisy holly hazel pearl ruby amber dawn robin rich bill art sunny sky crystal jade
    faye gay hunter chase grant pat sue ray reed wade drew frank carol victor patience honor
    charity prudence mercy star rain brook river penny candy fern heather
    """
)

#: surnames of diseases, signs, scores and procedures ("Colles fracture", "Gleason 4+3"): a
#: NER span made of these is not a person; a title or label before one still makes it a name
EPONYMS: frozenset[str] = words(
    """
    holter colles glasgow hodgkin hodgkin's hartmann hartmann's gleason mallampati apgar
    barthel braden waterlow wells caprini child pugh ranson glasgow-blatchford rockall
    parkinson parkinson's alzheimer alzheimer's crohn crohn's addison cushing graves hashimoto
    bell bell's babinski kernig brudzinski murphy murphy's mcburney rovsing trendelenburg
    whipple nissen billroth roux seldinger swan ganz foley hickman broca wernicke korsakoff
    barrett barrett's raynaud sjogren kawasaki guillain barre wilms ewing kaposi paget
    tinel phalen lachman mcmurray finkelstein allen romberg duke bishop killip nyha ecog
    karnofsky breslow clark dukes tnm mini-mental mmse moca abcd2 chads2 cha2ds2-vasc
    """
)

#: words that head a clinical note or label a field, which the small model takes for names
#: or places ("Requesting clinician", "Hosp no", "NOK", "TWOC")
LABEL_WORDS: frozenset[str] = words(
    """
    hosp requesting requested subj subject nok mum mom dad twoc obstetric obstetrics booking
    handover triage sbar referral outpatient inpatient ward bay bed mon tue tues wed thu thur
    thurs fri sat sun monday tuesday wednesday thursday friday saturday sunday coma scale
    score grade stage classification criteria procedure fracture lymphoma monitor sign test
    """
)
