"""Admins import event logs in the browser: upload, choose the mapping, follow the progress, read the summary.

The work runs in Celery (``variances.import_events``, see ``import_jobs.py``);
the job page polls its status fragment with HTMX until the job is done.
"""

from __future__ import annotations

import json
from pathlib import Path

from django import forms
from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.html import format_html, format_html_join

from accounts.models import Membership, OrgUnit
from accounts.permissions import role_required, unit_ids_for
from pathways.models import Pathway, PathwayVersion

from .adherence import step_adherence
from .import_jobs import import_job_create
from .importers import ImportFailed, Mapping, MappingError, load_mapping, parse_mapping_text
from .importers.loader import resolve, versions_text, why_nothing_was_imported
from .importers.mapping import MAX_MAPPING_BYTES
from .models import ImportJob

Role = Membership.Role
MAPPINGS_DIR = Path(settings.BASE_DIR) / "data" / "mappings"
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
LOG_SUFFIXES = (".xes", ".xes.gz", ".csv", ".csv.gz", ".xml", ".xml.gz")
RECENT_JOBS = 20


def shipped_mappings() -> list[tuple[str, str]]:
    """``(file name, label)`` of the mappings that come with CommonPath (``data/mappings/*.json``)."""
    choices = []
    for path in sorted(MAPPINGS_DIR.glob("*.json")):
        try:
            pathway = json.loads(path.read_text(encoding="utf-8")).get("pathway", "")
        except (OSError, ValueError):
            continue
        choices.append((path.name, f"{path.name} (for {pathway})" if pathway else path.name))
    return choices


class ImportForm(forms.Form):
    upload = forms.FileField(
        label="Event log",
        help_text="XES (.xes or .xes.gz) or CSV (.csv or .csv.gz) with the columns case_id, activity, "
        "timestamp (with a UTC offset) and optionally resource and cost.",
    )
    pathway = forms.ModelChoiceField(queryset=Pathway.objects.none(), label="Pathway")
    mapping = forms.ChoiceField(
        label="Mapping",
        required=False,
        help_text="How the log's activities map to the pathway's steps. Choose one that comes with "
        "CommonPath, or upload your own below.",
    )
    mapping_file = forms.FileField(label="Or upload a mapping (JSON)", required=False)
    org_unit = forms.ModelChoiceField(queryset=OrgUnit.objects.none(), label="Org unit of the episodes")
    closed = forms.BooleanField(
        required=False,
        label="Close each episode at its last event",
        help_text="Tick when the log holds complete stays: missing steps are then reported as omissions.",
    )
    skip_bad = forms.BooleanField(
        required=False,
        label="Skip cases with problems",
        help_text="Without this, one bad row means nothing is imported (every problem is listed).",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run: check and count, save nothing")

    def __init__(self, *args, unit_ids, **kwargs):
        super().__init__(*args, **kwargs)
        published = PathwayVersion.objects.published().values("pathway_id")
        self.fields["pathway"].queryset = Pathway.objects.filter(pk__in=published).order_by("code")
        units = OrgUnit.objects.filter(pk__in=unit_ids).order_by("path")
        self.fields["org_unit"].queryset = units
        root = units.filter(parent__isnull=True).first()
        if root is not None:
            self.fields["org_unit"].initial = root.pk
        self.fields["mapping"].choices = [("", "— upload my own —"), *shipped_mappings()]
        self.mapping_obj = None

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if not upload.name.lower().endswith(LOG_SUFFIXES):
            raise forms.ValidationError("Upload an XES or CSV event log (.xes, .xes.gz, .csv or .csv.gz).")
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        return upload

    def clean(self):
        data = super().clean()
        chosen, uploaded = data.get("mapping"), data.get("mapping_file")
        if chosen and uploaded:
            self.add_error("mapping_file", "Choose a mapping or upload one, not both.")
            return data
        if not chosen and not uploaded:
            self.add_error("mapping", "Choose a mapping, or upload your own.")
            return data
        try:
            self.mapping_obj = self._checked_mapping(chosen, uploaded, data.get("pathway"))
        except MappingError as exc:
            # Not a field error: the error summary would put the field's label before
            # each problem. One entry, headed by the file and linked to its field.
            field = self["mapping" if chosen else "mapping_file"]
            self.add_error(None, mapping_problems(exc, field_id=field.id_for_label))
        except ImportFailed as exc:
            self.add_error("pathway", str(exc))
        return data

    @staticmethod
    def _read_mapping(chosen: str, uploaded) -> Mapping:
        if chosen:
            return load_mapping(MAPPINGS_DIR / Path(chosen).name)
        if uploaded.size > MAX_MAPPING_BYTES:
            raise MappingError(uploaded.name, ["the file is larger than 1 MB; is it a mapping?"])
        try:
            text = uploaded.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MappingError(uploaded.name, ["it is not UTF-8 text"]) from None
        return parse_mapping_text(text, name=uploaded.name)

    def _checked_mapping(self, chosen: str, uploaded, pathway: Pathway | None) -> Mapping:
        """The mapping, checked against the pathway too: one ``MappingError`` lists every problem of both."""
        found: list[str] = []
        try:
            mapping = self._read_mapping(chosen, uploaded)
        except MappingError as exc:
            if exc.mapping is None or pathway is None:
                raise  # not a JSON object, or no pathway to check the rest against
            mapping, found = exc.mapping, exc.problems
        if pathway is not None:
            resolve(mapping, pathway_code=pathway.code, problems=found)  # raises when anything was found
        return mapping


def mapping_problems(exc: MappingError, *, field_id: str) -> str:
    """Every problem of a mapping as one list headed by the file's name (HTML, escaped)."""
    return format_html(
        '<a href="#{}">The mapping {} cannot be used:</a><ul>{}</ul>',
        field_id,
        exc.name,
        format_html_join("", "<li>{}.</li>", ((problem,) for problem in exc.problems)),
    )


# How the browser's form says 'import the good cases' (the command says --skip-bad).
TICK_SKIP_BAD = "tick 'Skip cases with problems'"


def _jobs_in_scope(user):
    return ImportJob.objects.filter(org_unit_id__in=unit_ids_for(user, Role.ADMIN))


@role_required(Role.ADMIN)
def import_list(request):
    """The import page: the upload form and the recent imports of the admin's units."""
    unit_ids = unit_ids_for(request.user, Role.ADMIN)
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES, unit_ids=unit_ids)
        if form.is_valid():
            data = form.cleaned_data
            job = import_job_create(
                upload=data["upload"],
                pathway=data["pathway"],
                org_unit=data["org_unit"],
                mapping=form.mapping_obj,
                closed=data["closed"],
                dry_run=data["dry_run"],
                skip_bad=data["skip_bad"],
                actor=request.user,
            )
            return redirect("variances:import_detail", pk=job.pk)
    else:
        form = ImportForm(unit_ids=unit_ids)
    jobs = _jobs_in_scope(request.user).select_related("pathway", "org_unit", "requested_by")[:RECENT_JOBS]
    return render(request, "variances/import/list.html", {"form": form, "jobs": jobs})


@role_required(Role.ADMIN)
def import_detail(request, pk: int):
    """One import: progress while it runs (HTMX polls the status fragment), then its summary."""
    job = _jobs_in_scope(request.user).select_related("pathway", "org_unit", "requested_by").filter(pk=pk).first()
    if job is None:
        raise Http404("No such import.")
    summary = job.summary or {}
    context = {
        "job": job,
        "summary": summary,
        "blocked": "" if job.is_live else why_nothing_was_imported(summary, skip=TICK_SKIP_BAD),
        "onto": versions_text(summary) if summary.get("format") else "",
    }
    if job.status == ImportJob.Status.SUCCEEDED and not job.dry_run:
        # What the pathway's episodes in this unit show now, the imported ones included.
        units = OrgUnit.objects.subtree_of([job.org_unit]).values_list("pk", flat=True)
        context["adherence"] = step_adherence(job.pathway.code, units)
    if request.htmx:
        return render(request, "variances/import/partials/status.html", context)
    return render(request, "variances/import/detail.html", context)
