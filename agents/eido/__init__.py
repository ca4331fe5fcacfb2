"""The NG911 intake stage: NENA-STA-021 EIDO JSON on ``cad.eido`` in, call events out."""
