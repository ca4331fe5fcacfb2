"""Crisis Call Diversion: the clinicians' work on a call, as pure rules.

``screening`` derives a C-SSRS screening's risk level; ``disposition`` turns a clinician's
disposition into the call's next triage decision; ``consults`` keeps the consult queue.
"""
