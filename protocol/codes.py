"""Default opening and closing codes (UK police). A server may be configured with others."""

from __future__ import annotations

__all__ = ["CLOSING_CODES", "INCIDENT_TYPES"]

#: Opening codes: the kind of incident reported.
INCIDENT_TYPES: dict[str, str] = {
    "ABDUCTION": "Abduction or kidnap",
    "ALARM": "Intruder or panic alarm activation",
    "ANIMAL": "Animal related",
    "ASB": "Anti-social behaviour",
    "ASSAULT": "Assault",
    "BURGLARY": "Burglary",
    "CONCERN": "Concern for safety",
    "CRIMDAM": "Criminal damage",
    "DOMESTIC": "Domestic incident",
    "DRUGS": "Drugs",
    "FIREARMS": "Firearms or weapons seen",
    "FRAUD": "Fraud",
    "HAZARD": "Highway disruption or hazard",
    "MISSING": "Missing person",
    "PUBORDER": "Public order",
    "ROBBERY": "Robbery",
    "RTC": "Road traffic collision",
    "SEXUAL": "Sexual offence",
    "SUDDEN": "Sudden death",
    "SUSPICIOUS": "Suspicious circumstances",
    "THEFT": "Theft",
    "TRAFFIC": "Traffic offence",
    "VEHICLE": "Vehicle crime",
    "WELFARE": "Welfare check",
}

#: Closing codes: how the incident ended.
CLOSING_CODES: dict[str, str] = {
    "ADVICE": "Advice given",
    "ARREST": "Arrest made",
    "CRIME": "Crime recorded",
    "DUPLICATE": "Duplicate of another incident",
    "HOAX": "Hoax or malicious call",
    "NFA": "No further action",
    "NOTRACE": "No trace on arrival",
    "OTHERAGENCY": "Passed to another agency",
    "RESOLVED": "Resolved at scene",
    "WORKAROUND": "Resolved without deployment",
}
