from .models import Pathway, PathwayVersion


def home_panel(user) -> dict:
    published = Pathway.objects.filter(versions__status=PathwayVersion.Status.PUBLISHED).distinct().count()
    drafts = PathwayVersion.objects.filter(status=PathwayVersion.Status.DRAFT).count()
    return {"published_pathways": published, "draft_versions": drafts}
