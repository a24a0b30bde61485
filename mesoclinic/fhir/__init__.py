"""The FHIR R4B API (`/fhir/R4B/`): the clinic's records as HL7 FHIR, built with fhir.resources.

`mapping.py` turns one model row into one validated R4B resource; `views.py` serves read,
search and the CapabilityStatement through the access layer. See docs/fhir.md."""
