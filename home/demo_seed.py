"""The demo's story, seeded through Porte's own services (so every step is audited as in real use).

Acme's people exist as their first sign-in leaves them (Alice, partner admin, group `engineers`; Bob, group
`finance`); three roles show the approval paths (auto-approved read-only; deploy, one approver; incident
response, break-glass allowed); Alice has past grants and an active one whose sessions have CloudTrail
activity (SIMULATED: moto emits no CloudTrail); Bob waits for an approval; an access review is open; a role
change awaits a second staff member. Every step is skipped when what it makes exists: seeding twice is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from allauth.socialaccount.models import SocialAccount
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from activity import services as activity_services
from activity import trail
from activity.models import ActivityEvent
from activity.simulator import CloudTrailSimulator
from approvals import changes
from approvals.context import Evidence
from approvals.services import request_create
from grants import provisioning
from grants.models import AccessRequest, CredentialIssue, Grant, Role
from grants.services import activation, expiry, minting, revocation, role_setup
from partners import invitations
from partners import services as partner_services
from partners.models import IdentityProvider, Membership, Partner
from portal.audit import audit_record
from portal.models import User
from reviews.models import ReviewCampaign, ReviewerMode
from reviews.services import review_campaign_start

DEMO_IP = "203.0.113.10"

READ_ONLY_POLICY: dict[str, object] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadOnlyInventory",
            "Effect": "Allow",
            "Action": [
                "ec2:Describe*",
                "s3:ListAllMyBuckets",
                "s3:GetBucketLocation",
                "cloudwatch:GetMetricData",
                "logs:DescribeLogGroups",
            ],
            "Resource": "*",
        }
    ],
}
DEPLOY_POLICY: dict[str, object] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DeployApp",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:PutParameter", "ecs:UpdateService", "ecs:DescribeServices"],
            "Resource": "*",
        }
    ],
}
INCIDENT_POLICY: dict[str, object] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "IncidentResponse",
            "Effect": "Allow",
            "Action": ["ec2:Describe*", "ec2:StopInstances", "ec2:RebootInstances", "logs:FilterLogEvents"],
            "Resource": "*",
        }
    ],
}


@dataclass(frozen=True)
class Person:
    sub: str
    email: str
    name: str
    groups: tuple[str, ...]
    partner_admin: bool = False


ALICE = Person("acme-0001", "alice@acme.example", "Alice Martin", ("engineers",), partner_admin=True)
BOB = Person("acme-0002", "bob@acme.example", "Bob Stone", ("finance",))


@dataclass(frozen=True)
class DemoWorld:
    partner: Partner
    alice: User
    bob: User
    readonly: Role
    deploy: Role
    incident: Role


def staff_user(
    username: str, *, email: str, first_name: str, last_name: str, password: str | None = None
) -> User:
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    with transaction.atomic():
        if password:
            user = User.objects.create_superuser(
                username, email, password, first_name=first_name, last_name=last_name
            )
        else:
            # A colleague who never signs in to the demo: there to be the second pair of eyes.
            user = User.objects.create_user(
                username, email, None, first_name=first_name, last_name=last_name, is_staff=True
            )
        audit_record(action="user.created", obj=user, data={"staff": True})
    return user


def staff_sign_in_enable(username: str, *, password: str, totp_secret: str) -> User:
    """Let a seeded staff member sign in: a password and a second factor (once; a re-run keeps what is set)."""
    from allauth.mfa.totp.internal.auth import TOTP

    user = User.objects.get(username=username, is_staff=True)
    if not user.has_usable_password():
        with transaction.atomic():
            user.set_password(password)
            user.save(update_fields=["password"])
            TOTP.activate(user, totp_secret)
            audit_record(action="user.sign_in_enabled", obj=user, data={"staff": True, "mfa": "totp"})
    return user


def second_partner_seed(*, admin: User) -> str:
    """Globex Corp, a second partner onboarding itself: created by staff, its IT contact invited. Returns the
    invitation's link ("" once Globex is past onboarding)."""
    partner = Partner.objects.filter(slug="globex").first() or partner_services.partner_create(
        name="Globex Corp", slug="globex", domains=["globex.example"], sponsor=admin, actor=admin
    )
    if partner.status != Partner.Status.ONBOARDING:
        return ""
    invitation, token = invitations.invitation_create(
        partner=partner, email="gina@globex.example", actor=admin
    )
    invitations.invitation_send(invitation, token)
    return invitations.invitation_link(token)


def partner_person(idp: IdentityProvider, person: Person, *, actor: User) -> User:
    """The Porte user and membership that this person's first sign-in through the IdP would create; signing
    in later finds them by subject (the IdP's `sub`), exactly as after a real first sign-in."""
    account = (
        SocialAccount.objects.filter(provider=idp.provider_id, uid=person.sub).select_related("user").first()
    )
    if account is None:
        with transaction.atomic():
            first, _, last = person.name.partition(" ")
            user = User.objects.create_user(
                f"{idp.provider_id}.{person.sub}", person.email, None, first_name=first, last_name=last
            )
            SocialAccount.objects.create(user=user, provider=idp.provider_id, uid=person.sub, extra_data={})
            partner_services.membership_create_on_first_sign_in(
                user=user, identity_provider=idp, groups=list(person.groups)
            )
    else:
        user = account.user
    membership = Membership.objects.get(user=user)
    if person.partner_admin and not membership.is_partner_admin:
        partner_services.membership_make_partner_admin(
            membership=membership, reason="Acme's Porte administrator", actor=actor
        )
    return user


def _role(partner: Partner, slug: str, **fields: object) -> Role:
    existing = Role.objects.filter(partner=partner, slug=slug).first()
    return existing or role_setup.role_create(partner=partner, slug=slug, **fields)  # type: ignore[arg-type]


def _approval(role: Role, approval: dict[str, object], *, author: User, second: User) -> None:
    """Set the role's approval policy the way staff do: proposed by one, approved by another (four eyes)."""
    if changes.role_snapshot(role)["approval"] == approval:
        return
    change = changes.role_change_propose(
        role=role, author=author, changes={"approval": approval}, reason="Demo approval policy"
    )
    if change is not None:
        changes.role_change_approve(change_id=change.pk, approver=second)


def roles_seed(partner: Partner, boundary: str, *, admin: User, colleague: User) -> tuple[Role, Role, Role]:
    readonly = _role(
        partner,
        "readonly",
        name="Read-only inventory",
        inline_policy=READ_ONLY_POLICY,
        description="Describe EC2 and list S3 buckets in Acme's account. Granted at once.",
        permissions_boundary_arn=boundary,
        max_duration=timedelta(hours=2),
        eligible_groups=["engineers"],
        actor=admin,
    )
    deploy = _role(
        partner,
        "deploy",
        name="Deploy the app",
        inline_policy=DEPLOY_POLICY,
        description="Update the app's ECS service and parameters. One approver: Acme's engineers or Porte staff.",
        permissions_boundary_arn=boundary,
        max_duration=timedelta(hours=4),
        eligible_groups=["engineers", "finance"],
        actor=admin,
    )
    _approval(
        deploy,
        {
            "approvals_required": 1,
            "approvers": "either",
            "partner_approver_group": "engineers",
            "auto_approve_requires_mfa": False,
            "require_mfa": False,
            "required_claim": "",
            "required_claim_value": "",
            "break_glass_allowed": False,
            "pending_ttl_s": 7 * 86400,
        },
        author=admin,
        second=colleague,
    )
    incident = _role(
        partner,
        "incident",
        name="Incident response",
        inline_policy=INCIDENT_POLICY,
        description="Stop or reboot instances during an incident. Two approvers, or break-glass (reviewed after).",
        permissions_boundary_arn=boundary,
        max_duration=timedelta(hours=1),
        eligible_groups=["engineers"],
        actor=admin,
    )
    _approval(
        incident,
        {
            "approvals_required": 2,
            "approvers": "staff",
            "partner_approver_group": "",
            "auto_approve_requires_mfa": False,
            "require_mfa": True,
            "required_claim": "",
            "required_claim_value": "",
            "break_glass_allowed": True,
            "pending_ttl_s": 86400,
        },
        author=admin,
        second=colleague,
    )
    for role in (readonly, deploy, incident):
        role.refresh_from_db()
        if role.provisioned_at is None:  # at once (not on the worker, not yet running): grants need the role
            provisioning.role_provision(role=role, actor=admin)
    return readonly, deploy, incident


def _granted(user: User, role: Role, justification: str, minutes: int, *, break_glass: bool = False) -> Grant:
    request = request_create(
        requester=user,
        role=role,
        justification=justification,
        duration=timedelta(minutes=minutes),
        evidence=Evidence(source_ip=DEMO_IP, mfa=True, authn_methods=["pwd", "otp"], origin="idp"),
        break_glass=break_glass,
    )
    assert request.grant is not None  # auto-approved role, or break-glass
    # The worker would activate it on commit; the demo's worker is not running yet.
    return activation.grant_activate(grant_id=request.grant.pk)


def grants_seed(world: DemoWorld, simulator: CloudTrailSimulator) -> None:
    """Alice: two past grants, a break-glass one awaiting its review, and an active one, with CLI and console
    sessions that did things in AWS."""
    alice, role = world.alice, world.readonly
    if Grant.objects.filter(user=alice).exists():
        return
    for justification in (
        "Quarterly inventory of EC2 instances",
        "Check S3 bucket regions for ticket ACME-311",
    ):
        past = _granted(alice, role, justification, 30)
        issue = minting.credential_mint(
            grant_id=past.pk, user=alice, kind=CredentialIssue.Kind.CLI, source_ip=DEMO_IP
        ).issue
        _write_activity(simulator, issue, after=timedelta(seconds=5), reads=4, writes=0, denied=0)
        revocation.grant_revoke(grant=past, reason="Work finished: ended early by Alice", actor=alice)
        expiry.role_finish_endings(role_id=role.pk)  # what the worker does on commit
    # Break-glass during an incident, ended once the instance was back: it waits for a staff review.
    emergency = _granted(
        alice,
        world.incident,
        "INC-77: the billing instance is unresponsive; reboot it and read its logs while Acme's on-call is paged",
        30,
        break_glass=True,
    )
    issue = minting.credential_mint(
        grant_id=emergency.pk, user=alice, kind=CredentialIssue.Kind.CLI, source_ip=DEMO_IP
    ).issue
    _write_activity(simulator, issue, after=timedelta(seconds=5), reads=3, writes=1, denied=1)
    revocation.grant_revoke(grant=emergency, reason="Incident over: instance rebooted", actor=alice)
    expiry.role_finish_endings(role_id=world.incident.pk)
    active = _granted(alice, role, "Inventory before the Friday migration (ACME-342)", 120)
    # The console session's work starts a little after the CLI's, so the two read apart on the timeline.
    for kind, after in ((CredentialIssue.Kind.CLI, 5), (CredentialIssue.Kind.CONSOLE, 60)):
        issue = minting.credential_mint(grant_id=active.pk, user=alice, kind=kind, source_ip=DEMO_IP).issue
        _write_activity(simulator, issue, after=timedelta(seconds=after), reads=5, writes=1, denied=2)
    activity_services.activity_ingest()


def _write_activity(
    simulator: CloudTrailSimulator,
    issue: CredentialIssue,
    *,
    after: timedelta,
    reads: int,
    writes: int,
    denied: int,
) -> None:
    """What the person did with the session, starting `after` its mint. (The simulated calls may lie a little in
    the future: ingestion takes CloudTrail's times as they are.)"""
    records = simulator.session_records(
        issue, at=issue.issued_at + after, reads=reads, writes=writes, denied=denied
    )
    simulator.write_log(issue.grant.role.partner.aws_account_id, records, at=issue.issued_at)


def pending_request_seed(world: DemoWorld) -> None:
    """Bob asks for the deploy role: it waits in Alice's queue (Acme's approver group) and in staff's."""
    if AccessRequest.objects.filter(requester=world.bob, role=world.deploy).exists():
        return
    request_create(
        requester=world.bob,
        role=world.deploy,
        justification="Roll out the invoice export fix (ACME-355)",
        duration=timedelta(hours=1),
        evidence=Evidence(source_ip=DEMO_IP, authn_methods=["pwd"], origin="idp"),
    )


def role_change_seed(world: DemoWorld, *, colleague: User) -> None:
    """A colleague proposes letting `finance` request the read-only role: the demo's admin is the second pair
    of eyes who may approve it."""
    if world.readonly.changes.filter(status="pending").exists():
        return
    if "finance" in changes.role_snapshot(world.readonly)["eligible_groups"]:
        return
    changes.role_change_propose(
        role=world.readonly,
        author=colleague,
        changes={"eligible_groups": ["engineers", "finance"]},
        reason="Finance reconciles instance costs each month",
    )


def review_seed(world: DemoWorld, *, admin: User) -> None:
    if ReviewCampaign.objects.filter(partner=world.partner, status=ReviewCampaign.Status.OPEN).exists():
        return
    # Acme's admin reviews her people (Bob's access); the sponsor reviews hers. The simulated calls run a couple of
    # minutes past the seeding (see _write_activity): the review's period ends after the last of them, so that its
    # evidence shows the demo's activity.
    last_call = ActivityEvent.objects.filter(partner=world.partner).aggregate(last=Max("event_time"))["last"]
    now = timezone.now()
    review_campaign_start(
        partner=world.partner,
        actor=admin,
        reviewer=ReviewerMode.PARTNER_ADMINS,
        now=max(now, last_call + timedelta(seconds=1)) if last_call else now,
    )


def story_seed(partner: Partner, boundary: str, *, admin: User) -> DemoWorld:
    colleague = staff_user("carol", email="carol@porte.invalid", first_name="Carol", last_name="Reyes")
    idp = IdentityProvider.objects.get(partner=partner)
    alice = partner_person(idp, ALICE, actor=admin)
    bob = partner_person(idp, BOB, actor=admin)
    readonly, deploy, incident = roles_seed(partner, boundary, admin=admin, colleague=colleague)
    world = DemoWorld(partner, alice, bob, readonly, deploy, incident)
    org_id = trail.organization_id()
    assert org_id is not None  # the partner account was vended into the organisation
    simulator = CloudTrailSimulator(org_id=org_id)
    simulator.ensure_bucket()
    grants_seed(world, simulator)
    pending_request_seed(world)
    role_change_seed(world, colleague=colleague)
    review_seed(world, admin=admin)
    return world
