"""GenericBatch files: parsing them (``parser``), sending their operations (``executor``) and finding the
server each handle's requests go to (``routing``)."""
