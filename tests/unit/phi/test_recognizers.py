"""Each recognizer alone, on text it must find and text it must leave (no spaCy needed)."""

from __future__ import annotations

import pytest

from securemed.phi import recognizers as r


def found(recognizer, text: str) -> set[tuple[str, str]]:
    return {(x.entity_type, text[x.start : x.end]) for x in recognizer.analyze(text, [])}


@pytest.mark.parametrize(
    "text, value",
    [
        ("DOB 03/04/1961.", "03/04/1961"),
        ("seen 2023-01-05 in clinic", "2023-01-05"),
        ("born March 4, 1961 in", "March 4, 1961"),
        ("on 4 Mar 2021 she", "4 Mar 2021"),
        ("since 03/2019", "03/2019"),
        ("ADMITTED 04-MAR-2021", "04-MAR-2021"),
        ("on the 4th of March, 2021", "4th of March, 2021"),
        ("x-ray from Dec '21 showed", "Dec '21"),
        ("MIMIC admission 2147-02-17", "2147-02-17"),
        ("seen on March 2019", "March 2019"),
    ],
)
def test_dates_in_every_common_format_are_found(text: str, value: str) -> None:
    assert ("DATE", value) in found(r.date_recognizer(), text)


@pytest.mark.parametrize(
    "text",
    ["BP 120/80, HR 88", "quit smoking in 2015", "Lasix 40 mg IV", "WBC 12.4, INR 2.3",
     "grade 2/6 murmur", "ICD-10 J18.9", "version 1.2.3"],
)  # fmt: skip
def test_vitals_doses_and_lone_years_are_not_dates(text: str) -> None:
    assert found(r.date_recognizer(), text) == set()


def test_compact_date_needs_a_date_word_in_front() -> None:
    # alone 0.3 (below the 0.4 threshold); Presidio's context enhancer raises it after "date"
    (result,) = r.compact_date_recognizer().analyze("20230105", [])
    assert result.score < 0.4
    assert "date" in r.compact_date_recognizer().context


@pytest.mark.parametrize(
    "text, value",
    [("a 93-year-old woman", "93"), ("93 y/o F", "93"), ("93M with cough", "93"),
     ("aged 101, frail", "101"), ("Age: 90", "90"), ("in her late 90s", "90s"), ("95yo", "95")],
)  # fmt: skip
def test_ages_over_89_are_found(text: str, value: str) -> None:
    assert ("AGE", value) in found(r.age_recognizer(), text)


@pytest.mark.parametrize("text", ["a 67-year-old man", "89 y/o F", "Age: 45", "88M", "HR 93"])
def test_ages_of_89_and_below_and_other_numbers_are_not_phi(text: str) -> None:
    assert found(r.age_recognizer(), text) == set()


@pytest.mark.parametrize(
    "text, value",
    [("call (555) 234-9876", "(555) 234-9876"), ("ph 555.234.9876", "555.234.9876"),
     ("+1 617 555 0199 mobile", "+1 617 555 0199"), ("Tel: +44 20 7946 0958", "+44 20 7946 0958"),
     ("cell 555-234-9876 x12", "555-234-9876 x12")],
)  # fmt: skip
def test_phone_formats_are_found(text: str, value: str) -> None:
    assert ("PHONE", value) in found(r.phone_recognizer(), text)


def test_fax_label_outscores_the_phone_pattern_on_the_same_number() -> None:
    text = "Fax: 555-234-9877"
    (fax,) = r.fax_recognizer().analyze(text, [])
    (phone,) = r.phone_recognizer().analyze(text, [])
    assert (fax.start, fax.end) == (phone.start, phone.end) and fax.score > phone.score


@pytest.mark.parametrize("text", ["BP 120/80", "EF 35%", "WBC 12.4", "MRN 4821937"])
def test_numbers_that_are_not_phones_are_left(text: str) -> None:
    assert found(r.phone_recognizer(), text) == set()


def test_valid_ssn_is_found_and_never_issued_ones_are_not() -> None:
    assert ("SSN", "219-45-6788") in found(r.ssn_recognizer(), "SSN 219-45-6788")
    assert ("SSN", "219 45 6788") in found(r.ssn_recognizer(), "SS# 219 45 6788")
    for invalid in ("078-05-1120", "000-12-3456", "666-12-3456", "912-12-3456", "219-00-1234"):
        assert found(r.ssn_recognizer(), f"SSN {invalid}") == set()


@pytest.mark.parametrize(
    "factory, text, value",
    [
        (r.mrn_recognizer, "MRN: 4821937", "4821937"),
        (r.mrn_recognizer, "MR#: A832468", "A832468"),
        (r.mrn_recognizer, "Hospital No. 47-26-66", "47-26-66"),
        (r.mrn_recognizer, "Medical Record Number 00123456", "00123456"),
        (r.accession_recognizer, "Acc #: 2023-CR-004512", "2023-CR-004512"),
        (r.encounter_recognizer, "CSN: 991234567", "991234567"),
        (r.encounter_recognizer, "Visit ID 58683861", "58683861"),
        (r.account_recognizer, "Acct No. 77812-3", "77812-3"),
        (r.health_plan_recognizer, "Member ID: XZB123456789", "XZB123456789"),
        (r.health_plan_recognizer, "beneficiary 1EG4-TE5-MK73", "1EG4-TE5-MK73"),
        (r.license_recognizer, "Driver's license: D1234567", "D1234567"),
        (r.dea_recognizer, "prescriber AB1234563", "AB1234563"),
        (r.vehicle_recognizer, "license plate 7ABC123", "7ABC123"),
        (r.vehicle_recognizer, "VIN 1HGCM82633A004352", "1HGCM82633A004352"),
        (r.device_recognizer, "pacemaker serial number PJN123456H", "PJN123456H"),
        (r.device_recognizer, "UDI (01)00643169001763(17)160712", "(01)00643169001763(17)160712"),
    ],
)
def test_labelled_identifiers_report_the_value_not_the_label(factory, text, value) -> None:
    recognizer = factory()
    assert (recognizer.entity_type, value) in found(recognizer, text)


def test_identifier_recognizers_ignore_clinical_numbers() -> None:
    text = "Lasix 40 mg IV. BP 132/84. Visit in 2 weeks. Account of events. Plan: CT chest."
    for factory in (r.mrn_recognizer, r.accession_recognizer, r.encounter_recognizer,
                    r.account_recognizer, r.health_plan_recognizer, r.license_recognizer,
                    r.vehicle_recognizer, r.device_recognizer):  # fmt: skip
        assert found(factory(), text) == set(), factory.__name__


def test_dea_number_with_a_wrong_check_digit_is_refused() -> None:
    assert found(r.dea_recognizer(), "AB1234564") == set()


def test_addresses_cities_and_zips() -> None:
    text = "123 Oak Street, Apt 4B, Springfield, IL 62704"
    assert found(r.address_recognizer(), text) >= {
        ("LOCATION", "123 Oak Street, Apt 4B"), ("LOCATION", "Springfield"), ("ZIP", "62704")
    }  # fmt: skip
    assert ("ZIP", "SW1A 1AA") in found(r.address_recognizer(), "London SW1A 1AA")
    assert ("LOCATION", "Hauptstraße 5") in found(r.address_recognizer(), "Hauptstraße 5, Berlin")
    assert ("LOCATION", "Greenville") in found(
        r.address_recognizer(), "Lives with wife Mary in Greenville with her dog"
    )


def test_states_and_clinical_abbreviations_are_not_places() -> None:
    text = "Pleural effusion, PA and lateral views. Views: AP, PA."
    assert found(r.address_recognizer(), text) == set()


def test_facility_names_are_found_and_hospital_course_is_not() -> None:
    facility = r.FacilityRecognizer()
    assert ("FACILITY", "St. Mary's Hospital") in found(facility, "seen at St. Mary's Hospital.")
    assert ("FACILITY", "Hospital of Saint Raphael") in found(
        facility, "from Hospital of Saint Raphael."
    )
    for text in ("Brief Hospital Course: stable.", "Seen in Pulmonary Clinic.", "the hospital"):
        assert found(facility, text) == set(), text


@pytest.mark.parametrize(
    "text, value",
    [("seen by Dr. Maria Lopez-Garcia today", "Maria Lopez-Garcia"),
     ("Patient: O'Neil, John", "O'Neil, John"), ("Name: SMITH^JANE", "SMITH^JANE"),
     ("Jane Doe, MD", "Jane Doe"), ("Dear Mrs. Kowalski,", "Kowalski"),
     ("his wife Mary at bedside", "Mary"), ("Hi Dr. de la Cruz, my", "de la Cruz"),
     ("Sincerely,\n\nAnn Lee", "Ann Lee"), ("Spoke with Ann Lee (HCP) today", "Ann Lee")],
)  # fmt: skip
def test_names_after_titles_labels_and_before_credentials(text: str, value: str) -> None:
    assert ("PERSON", value) in found(r.PersonRecognizer(), text)


def test_name_patterns_stop_at_clinical_words() -> None:
    assert found(r.PersonRecognizer(), "Dr. Chen Reports improvement") == {("PERSON", "Chen")}
    assert found(r.PersonRecognizer(), "Patient: Denies chest pain") == set()


def test_email_recognizer_uses_the_offline_suffix_list() -> None:
    email = r.OfflineEmailRecognizer()
    assert email.validate_result("jane.doe@example.org")
    assert not email.validate_result("jane.doe@example.notatld")
    assert r.OFFLINE_TLD_EXTRACTOR.suffix_list_urls == ()


def test_labelled_nhs_style_record_number_is_an_mrn() -> None:
    assert ("MRN", "943 476 5919") in found(r.mrn_recognizer(), "NHS Number: 943 476 5919")


# --- generalisation: formats beyond the synthetic corpus's ------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("came in on 21/06 with chest pain", "21/06"),
        ("admitted 4/11 via ED", "4/11"),
        ("last scan Oct-19, stable", "Oct-19"),
        ("TWOC booked Thurs 9th", "9th"),
        ("see you Friday the 22nd", "22nd"),
    ],
)
def test_day_month_without_year_and_weekday_ordinals_are_dates(text: str, value: str) -> None:
    assert ("DATE", value) in found(r.date_recognizer(), text)


@pytest.mark.parametrize("text", ["r/v 3/52", "abx for 5/7", "review in 6/12", "BP 118/76"])
def test_uk_duration_fractions_and_pressures_are_not_dates(text: str) -> None:
    assert not any(t == "DATE" for t, _ in found(r.date_recognizer(), text))


@pytest.mark.parametrize(
    "text, value",
    [
        ("widow, aged ninety-four, lives alone", "ninety-four"),
        ("she is one hundred and one years old", "one hundred and one"),
        ("ninety-six yrs, frail", "ninety-six"),
        ("pt is 97 and independent", "97"),
    ],
)
def test_ages_in_words_and_after_is_are_found(text: str, value: str) -> None:
    assert ("AGE", value) in found(r.age_recognizer(), text)


def test_a_small_age_in_words_is_not_phi() -> None:
    assert found(r.age_recognizer(), "aged sixty-two, smoker") == set()


@pytest.mark.parametrize(
    "text, value",
    [
        ("ring her on 0161 555 0937 after 5", "0161 555 0937"),
        ("mobile 07911 123456", "07911 123456"),
        ("son 0423 118 774 (AU)", "0423 118 774"),
    ],
)
def test_uk_and_australian_numbers_with_spaces_are_phones(text: str, value: str) -> None:
    assert ("PHONE", value) in found(r.phone_recognizer(), text)


def test_a_dose_and_time_are_not_trunk_phone_numbers() -> None:
    assert found(r.phone_recognizer(), "0900 500 mg given") == set()


@pytest.mark.parametrize(
    "text, entity, value",
    [
        ("Hosp no: QE7731902", "MRN", "QE7731902"),
        ("Hospital number KX-20931", "MRN", "KX-20931"),
        ("claim no. CLM-7730-221", "ACCOUNT", "CLM-7730-221"),
        ("Incident ref IR/2022/1187 filed", "ACCOUNT", "IR/2022/1187"),
        ("band number 7731029384", "HEALTH_PLAN", "7731029384"),
        ("sensor serial 3QX9-11", "DEVICE_ID", "3QX9-11"),
        ("transmitter ID 7HQ2LM", "DEVICE_ID", "7HQ2LM"),
    ],
)
def test_identifiers_after_new_labels(text: str, entity: str, value: str) -> None:
    recognizers = {
        "MRN": r.mrn_recognizer(), "ACCOUNT": r.account_recognizer(),
        "HEALTH_PLAN": r.health_plan_recognizer(), "DEVICE_ID": r.device_recognizer(),
    }  # fmt: skip
    assert (entity, value) in found(recognizers[entity], text)


def test_a_reference_range_is_not_an_account() -> None:
    assert found(r.account_recognizer(), "ref range 3.5-5.1, see ref 12/03/2021") == set()


def test_uk_registration_plates_are_vehicles() -> None:
    assert ("VEHICLE", "LB07 SEO") in found(r.vehicle_recognizer(), "car LB07 SEO towed")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Flat 3A, Beech Court, 27 Mill Lane, Leeds",
            {("LOCATION", "Flat 3A, Beech Court, 27 Mill Lane")},
        ),
        ("Lot 9, Pinecrest Estate", {("LOCATION", "Lot 9, Pinecrest Estate")}),
        ("moved to Halifax NS B3H 4R2 last year", {("LOCATION", "Halifax"), ("ZIP", "B3H 4R2")}),
        ("Geelong VIC 3220", {("LOCATION", "Geelong"), ("ZIP", "3220")}),
        ("12 Baobab Street, Polokwane 0699", {("LOCATION", "Polokwane"), ("ZIP", "0699")}),
    ],
)
def test_international_address_lines(text: str, expected: set[tuple[str, str]]) -> None:
    assert expected <= found(r.address_recognizer(), text)


def test_a_tnm_stage_is_not_a_canadian_postcode() -> None:
    assert not any(t == "ZIP" for t, _ in found(r.address_recognizer(), "pT3N1M0 on histology"))


@pytest.mark.parametrize(
    "text, value",
    [
        ("GP: Dr Lowe, Birchfield Road Surgery", "Birchfield Road Surgery"),
        ("transferred from Oakwood Care Home", "Oakwood Care Home"),
        ("collected from Kingsway Pharmacy today", "Kingsway Pharmacy"),
        ("pupil at Hillcrest Primary School", "Hillcrest Primary School"),
    ],
)
def test_practices_care_homes_pharmacies_and_schools_are_facilities(text: str, value: str) -> None:
    assert ("FACILITY", value) in found(r.FacilityRecognizer(), text)


def test_a_surgical_specialty_is_not_a_facility() -> None:
    assert found(r.FacilityRecognizer(), "referred to Colorectal Surgery") == set()


@pytest.mark.parametrize(
    "text, value",
    [
        ("Patient: JOY OKAFOR  Sex: F", "JOY OKAFOR"),
        ("seen with Faith Ndlovu today", "Faith Ndlovu"),
        ("Name: Pereira, Will", "Pereira, Will"),
        ("ED: OKAFOR, GRACE 88F", "OKAFOR, GRACE"),
        ("recall letter - Yusuf Demir, DOB 02/02/1950", "Yusuf Demir"),
        ("Dear mrs kowalczyk, thank you", "kowalczyk"),
        ("spoke to dr adeyemi.", "adeyemi"),
        ("Sr. Anna Li on nights", "Anna Li"),
        ("Driver Owain Price unhurt", "Owain Price"),
    ],
)
def test_names_in_name_positions_including_word_names_and_lower_case(text: str, value: str) -> None:
    assert ("PERSON", value) in found(r.PersonRecognizer(), text)


@pytest.mark.parametrize(
    "text",
    [
        "Will review in clinic. Hope for improvement.",
        "Patient: will be discharged",
        "dr aware, ms relapse",
        "MSH|^~\\&|A|B|C|D|202301010000||ADT^A01|1|P|2.5",
    ],
)
def test_word_names_alone_and_message_types_are_not_names(text: str) -> None:
    assert found(r.PersonRecognizer(), text) == set()


def test_table_cells_are_typed_by_their_column_header() -> None:
    text = "Hosp No\tPatient\tDOB\tConsultant\nK22019\tMorrow, Grace\t01/05/1944\tDr Iyer\n"
    assert found(r.TableRecognizer(), text) == {
        ("MRN", "K22019"), ("PERSON", "Morrow, Grace"), ("DATE", "01/05/1944"), ("PERSON", "Iyer"),
    }  # fmt: skip


def test_table_columns_that_are_not_identifiers_are_left() -> None:
    assert found(r.TableRecognizer(), "bed\tissue\tplan\n4\tAKI\tfluids") == set()


def test_hl7_fields_are_found_by_position() -> None:
    text = (
        "MSH|^~\\&|RIS|STLUKES|EHR|HUB|202402291200||ADT^A04|X1|P|2.5\n"
        "PID|1||88120^^^MRN||QUILL^ROSA^M||19400115|F|||9 PINE AVE^^TOLEDO^OH^43604\n"
        "PV1|1|I|W3^12^A||||4411^HALE^SIMON||||||||||||V7781"
    )
    result = found(r.Hl7Recognizer(), text)
    assert {
        ("FACILITY", "STLUKES"), ("DATE", "20240229"), ("MRN", "88120"), ("PERSON", "QUILL"),
        ("PERSON", "ROSA"), ("DATE", "19400115"), ("LOCATION", "9 PINE AVE"),
        ("LOCATION", "TOLEDO"), ("ZIP", "43604"), ("PERSON", "HALE"), ("PERSON", "SIMON"),
        ("ENCOUNTER", "V7781"),
    } <= result  # fmt: skip
    assert not any("ADT" in value for _, value in result)
