"""Label Studio: medactive as its ML backend, and its JSON exports imported back.

* :func:`~medactive.annotate.labelstudio.app.create_backend`: the ML backend app (predictions
  ordered by medactive's rank, answers recorded from webhooks, rounds started);
* :func:`~medactive.annotate.labelstudio.importer.import_labelstudio_export`: a JSON export's
  annotations recorded in a project.

docs/integrations.md gives the Label Studio setup.
"""
