"""The NG911 intake stage: NENA-STA-021 EIDO JSON on ``heart.cad.eido`` in, call events out."""
